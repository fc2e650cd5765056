"""Failure alerts reach a real HTTP endpoint (a local server), and a broken webhook never raises."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from airflow.sdk import AsyncCallback  # at import time: Airflow configures logging once, before caplog

from jobs.alerts import failure_payload, send_alert, task_failure_alert
from jobs.settings import get_settings
from tests.support import resolve_dotted


class Receiver(ThreadingHTTPServer):
    """A webhook endpoint on 127.0.0.1 that keeps every JSON body it receives."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.got_one = threading.Event()

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append({"content_type": self.headers["Content-Type"], **json.loads(body)})
                self.send_response(204)
                self.end_headers()
                outer.got_one.set()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/msp"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


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


def test_the_deadline_callback_posts_what_airflow_hands_it(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The context is what ``Deadline.handle_miss`` builds: the DAG run as the REST API shows it, and the deadline."""
    import asyncio

    from jobs.alerts import deadline_missed_alert

    callback = AsyncCallback(deadline_missed_alert, kwargs={"chain": "ingest -> train -> score"})
    assert resolve_dotted(callback.path) is deadline_missed_alert  # the triggerer imports it by this path
    ctx = {
        "dag_run": {
            "dag_id": "marketing_score",
            "dag_run_id": "scheduled__2026-10-30T05:00:00+00:00",
            "state": "running",
            "logical_date": "2026-10-30T05:00:00Z",
        },
        "deadline": {"id": "0193", "deadline_time": datetime(2026, 10, 30, 8, 0, tzinfo=UTC)},
    }
    monkeypatch.setenv("MSP_ALERT_WEBHOOK_URL", receiver.url)
    get_settings.cache_clear()
    try:
        with caplog.at_level("ERROR", logger="msp.alerts"):
            asyncio.run(deadline_missed_alert(context=ctx, **callback.kwargs))
    finally:
        get_settings.cache_clear()
    assert receiver.got_one.wait(10)
    [body] = receiver.received
    assert (body["event"], body["dag_id"], body["state"]) == ("deadline_missed", "marketing_score", "running")
    assert body["deadline"] == "2026-10-30T08:00:00+00:00" and body["chain"] == "ingest -> train -> score"
    assert "ALERT ingest -> train -> score: marketing_score run scheduled__2026-10-30T05:00:00+00:00" in caplog.text
