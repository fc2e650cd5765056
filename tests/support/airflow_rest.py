"""A small client of Airflow 3's REST API (``/auth/token`` JWT login, ``/api/v2``), for stack-mode tests."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

TERMINAL = {"success", "failed"}


class AirflowRest:
    def __init__(self, base_url: str, user: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.user = user
        self.password = password
        self.token: str | None = None

    def request(self, method: str, path: str, body: Any = None, auth: bool = True) -> tuple[int, Any]:
        """(status, parsed JSON or text); HTTP errors are returned, not raised."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.login()}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw or b"null")
        except ValueError:
            return status, raw.decode(errors="replace")

    def login(self) -> str:
        if self.token is None:
            status, answer = self.request(
                "POST", "/auth/token", {"username": self.user, "password": self.password}, auth=False
            )
            if status not in (200, 201):
                raise PermissionError(f"login as {self.user} refused: {status} {answer}")
            self.token = answer["access_token"]
        return self.token

    def wait_for_dag(self, dag_id: str, timeout_s: float = 120.0) -> dict[str, Any]:
        """The DAG's record once the dag-processor has parsed it."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, answer = self.request("GET", f"/api/v2/dags/{dag_id}")
            if status == 200:
                return answer
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} not parsed after {timeout_s:.0f} s: {status} {answer}")
            time.sleep(2)

    def trigger(self, dag_id: str, conf: dict[str, Any], logical_date: str | None = None) -> str:
        """Unpause the DAG and create a run; returns its run id."""
        self.unpause(dag_id)
        status, answer = self.request(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": logical_date, "conf": conf}
        )
        if status != 200:
            raise RuntimeError(f"triggering {dag_id}: {status} {answer}")
        return answer["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float = 600.0) -> str:
        """The run's terminal state (success or failed)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, answer = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if status == 200 and answer["state"] in TERMINAL:
                return answer["state"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} run {run_id} not finished after {timeout_s:.0f} s: {answer}")
            time.sleep(3)

    def wait_for_triggered_run(self, dag_id: str, run_type: str = "asset_triggered", timeout_s: float = 600.0) -> str:
        """The id of the DAG's first run of ``run_type`` (created by the scheduler), once it exists."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, answer = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=run_after")
            runs = [r for r in answer.get("dag_runs", []) if r.get("run_type") == run_type] if status == 200 else []
            if runs:
                return runs[0]["dag_run_id"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {run_type} run of {dag_id} after {timeout_s:.0f} s: {status} {answer}")
            time.sleep(3)

    def unpause(self, dag_id: str) -> None:
        status, answer = self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        if status != 200:
            raise RuntimeError(f"unpausing {dag_id}: {status} {answer}")

    def task_logs(self, dag_id: str, run_id: str) -> str:
        """Every task instance's state and last try's log (for failure messages)."""
        _, answer = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        out = []
        for ti in answer.get("task_instances", []) if isinstance(answer, dict) else []:
            tries = max(ti.get("try_number") or 1, 1)
            _, text = self.request(
                "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{tries}"
            )
            out.append(f"--- {ti['task_id']}: {ti['state']}\n{str(text)[-3000:]}")
        return "\n".join(out)

    def task_timings(self, dag_id: str, run_id: str) -> str:
        """Each task's wait in the queue and run time (seconds), in start order: where a run's time went."""
        _, answer = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        rows = []
        for ti in answer.get("task_instances", []) if isinstance(answer, dict) else []:
            queued, start, end = (_when(ti.get(k)) for k in ("queued_when", "start_date", "end_date"))
            waited = (start - queued).total_seconds() if queued and start else float("nan")
            ran = (end - start).total_seconds() if start and end else float("nan")
            line = f"  {ti['task_id']:<28} {ti['state']!s:<8} queued {waited:6.1f} ran {ran:6.1f}"
            rows.append((start.timestamp() if start else float("inf"), line))
        rows.sort(key=lambda r: r[0])
        return "\n".join([f"{dag_id} {run_id}:", *(line for _, line in rows)])


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
