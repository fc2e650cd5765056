"""Alerts: every DAG's tasks call :func:`task_failure_alert` when they fail; checks that let the run go on
(e.g. the fairness audit) call :func:`event_alert`.

The alert is always logged (level ERROR, logger ``msp.alerts``, so it lands in the task log and in
whatever collects the worker's logs); if ``MSP_ALERT_WEBHOOK_URL`` is set it is also POSTed there as
JSON (a Slack or Teams incoming webhook, an Alertmanager or PagerDuty bridge, any HTTP endpoint).
A webhook that fails is logged and never fails the callback: the task's own failure is what counts.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger("msp.alerts")

WEBHOOK_TIMEOUT_S = 10.0


def failure_payload(context: Any) -> dict[str, Any]:
    """What went wrong where: DAG, task, run, try, logical date, the error and the log's URL."""
    ti = context.get("ti") or context.get("task_instance")
    error = context.get("exception")
    logical = context.get("logical_date")
    return {
        "event": "task_failed",
        "dag_id": getattr(ti, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(ti, "run_id", None) or context.get("run_id"),
        "try_number": getattr(ti, "try_number", None),
        "max_tries": getattr(ti, "max_tries", None),
        "logical_date": logical.isoformat() if hasattr(logical, "isoformat") else logical,
        "error_type": type(error).__name__ if error is not None else None,
        "error": str(error)[:2000] if error is not None else None,
        "log_url": getattr(ti, "log_url", None),
        "summary": f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')} failed: {str(error)[:300]}",
    }


def post_json(url: str, payload: dict[str, Any], timeout: float = WEBHOOK_TIMEOUT_S) -> int:
    """POST ``payload`` as JSON; the HTTP status (raises on connection errors and HTTP errors)."""
    body = json.dumps(payload, default=str).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "msp-alerts"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return int(response.status)


def send_alert(payload: dict[str, Any], webhook_url: str | None, level: int = logging.ERROR) -> bool:
    """Log the alert (at ``level``) and POST it to ``webhook_url`` if given; True when the webhook accepted it."""
    log.log(level, "ALERT %s", payload["summary"])
    if not webhook_url:
        return False
    try:
        status = post_json(webhook_url, payload)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("alert webhook failed: %s", exc)
        return False
    log.info("alert webhook answered HTTP %d", status)
    return 200 <= status < 300


def task_failure_alert(context: Any) -> None:
    """``on_failure_callback`` of every task (wired through each DAG's ``default_args``)."""
    from jobs.settings import get_settings

    secret = get_settings().alert_webhook_url
    send_alert(failure_payload(context), secret.get_secret_value() if secret is not None else None)


def event_alert(event: str, summary: str, webhook_url: str | None, **details: Any) -> bool:
    """A non-failure alert (the run went on, someone should look), e.g. ``fairness_disparity``.

    Logged as a WARNING ``ALERT <summary>`` and POSTed like a failure's alert, as
    ``{"event": ..., "summary": ..., **details}``; True when the webhook accepted it.
    """
    return send_alert({"event": event, "summary": summary, **details}, webhook_url, level=logging.WARNING)
