"""Failure alerts reach a real HTTP endpoint (a local server), and a broken webhook never raises."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from jobs.alerts import failure_payload, send_alert, task_failure_alert
from jobs.settings import get_settings
from tests.support.webhook import Receiver


def context(error: Exception) -> dict:
    ti = SimpleNamespace(
        dag_id="marketing_score", task_id="score", run_id="manual__1", try_number=1, max_tries=2, log_url="http://x"
    )
    return {"ti": ti, "exception": error, "logical_date": datetime(2026, 10, 30, tzinfo=UTC)}


def test_the_payload_names_dag_task_run_and_error() -> None:
    payload = failure_payload(context(ValueError("features missing")))
    assert payload["dag_id"] == "marketing_score" and payload["task_id"] == "score"
    assert payload["error_type"] == "ValueError" and payload["error"] == "features missing"
    assert payload["logical_date"] == "2026-10-30T00:00:00+00:00"
    assert payload["summary"] == "marketing_score.score failed: features missing"


def test_the_callback_posts_to_the_configured_webhook(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MSP_ALERT_WEBHOOK_URL", receiver.url)
    get_settings.cache_clear()
    try:
        with caplog.at_level("ERROR", logger="msp.alerts"):
            task_failure_alert(context(RuntimeError("boom")))
    finally:
        get_settings.cache_clear()
    assert receiver.got_one.wait(10)
    [body] = receiver.received
    assert body["content_type"] == "application/json"
    assert (body["event"], body["task_id"], body["error"]) == ("task_failed", "score", "boom")
    assert "ALERT marketing_score.score failed: boom" in caplog.text


def test_an_unreachable_webhook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="msp.alerts"):
        assert send_alert(failure_payload(context(RuntimeError("x"))), "http://127.0.0.1:9/nothing") is False
    assert "alert webhook failed" in caplog.text


def test_a_missed_deadline_fails_the_watchdog_and_the_webhook_receives_the_alert(
    receiver: Receiver, msp_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forced failure through Airflow: marketing_watchdog on a date with no assignments; the real endpoint hears it."""
    from jobs.airflow_local import dags_test, failed_tasks

    monkeypatch.setenv("MSP_ALERT_WEBHOOK_URL", receiver.url)
    get_settings.cache_clear()
    settings = get_settings()
    run = dags_test(settings, "marketing_watchdog", "2026-10-30", {"ds": "2026-10-30", "grace_minutes": 0})
    assert not run.ok and failed_tasks(settings, run) == ["check_assignments_published"]
    assert receiver.got_one.wait(30), f"no webhook call; see {run.log_path}"
    [body] = receiver.received
    where = (body["event"], body["dag_id"], body["task_id"])
    assert where == ("task_failed", "marketing_watchdog", "check_assignments_published")
    assert "deadline missed: no marketing.strategy_assignments rows for run date 2026-10-30" in body["error"]
    assert body["try_number"] == 1, "a missed deadline fails at once, without retry"


def test_the_watchdog_counts_the_rows_of_the_run_date(msp_home: Path) -> None:
    import pandas as pd

    from jobs.monitoring.deadline import DeadlineMissed, check_published, wait_published
    from jobs.warehouse import Warehouse

    settings = get_settings()
    wh = Warehouse.from_settings(settings)
    wh.migrate()
    frame = pd.DataFrame(
        {
            "run_date": [datetime(2026, 10, 29).date()] * 3,
            "customer_id": ["a", "b", "c"],
            "strategy": "no_action",
            "reason": "model",
            "propensity": 1.0,
            "model_name": "m",
            "model_version": "1",
            "scored_at": datetime(2026, 10, 29, 5),
        }
    )
    wh.replace("strategy_assignments", {"run_date": datetime(2026, 10, 29).date()}, frame)
    assert check_published(settings, "2026-10-29") == 3
    with pytest.raises(DeadlineMissed, match=r"run date 2026-10-30 \(latest run date present: 2026-10-29\)"):
        wait_published(settings, "2026-10-30", grace_s=0.3, every_s=0.1)
