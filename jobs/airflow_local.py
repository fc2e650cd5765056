"""Run this repository's DAGs with the embedded Airflow (SQLite metadata under ``settings.airflow_home``).

Used by ``make demo`` and the end-to-end tests: ``airflow dags test`` runs a whole DAG run in
one process, with the real scheduler logic, task runner and XComs, and no services to start.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.settings import Settings
from jobs.threads import thread_env

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]


@dataclass
class DagRunResult:
    dag_id: str
    returncode: int
    state: str
    log_path: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.state == "success"


def airflow_env(settings: Settings) -> dict[str, str]:
    home = settings.path(settings.airflow_home)
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
            "MSP_HOME": str(settings.home),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            **thread_env(env),  # the task processes' OpenMP threads spin briefly (jobs/threads.py)
            # `airflow standalone` starts its components as `airflow ...` from PATH: the venv's first
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        }
    )
    return env


def airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


#: metadata databases this process has migrated: ``airflow db migrate`` takes about 9 s even when there is
#: nothing to do, and the demo and the end-to-end tests run several DAGs against one home
_MIGRATED: set[Path] = set()


def ensure_db(settings: Settings) -> None:
    """Create or upgrade the SQLite metadata database (idempotent; once per process and home)."""
    home = settings.path(settings.airflow_home)
    database = home.resolve() / "airflow.db"
    if database in _MIGRATED and database.exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [airflow_bin(), "db", "migrate"],
        env=airflow_env(settings),
        check=True,
        capture_output=True,
        text=True,
    )
    _MIGRATED.add(database)


def dags_test(settings: Settings, dag_id: str, logical_date: str, conf: dict[str, Any] | None = None) -> DagRunResult:
    """``airflow dags test DAG DATE [-c CONF]``; the full log goes to ``var/airflow/runs/``."""
    ensure_db(settings)
    log_dir = settings.path(settings.airflow_home) / "runs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{dag_id}-{logical_date}.log"
    args = [airflow_bin(), "dags", "test", dag_id, logical_date]
    if conf:
        args += ["-c", json.dumps(conf)]
    log.info("airflow dags test %s %s %s (log: %s)", dag_id, logical_date, json.dumps(conf or {}), log_path)
    with open(log_path, "w") as fh:
        proc = subprocess.run(args, env=airflow_env(settings), stdout=fh, stderr=subprocess.STDOUT, check=False)
    text = log_path.read_text(errors="replace")
    state = "unknown"
    for line in text.splitlines():
        if "DagRun Finished" in line and "state=" in line:
            state = line.split("state=", 1)[1].split(",", 1)[0]
    return DagRunResult(dag_id, proc.returncode, state, log_path)


def task_states(settings: Settings, result: DagRunResult) -> dict[str, str]:
    """State of every task instance of the run, read from the embedded metadata database."""
    import sqlite3

    run_id = None
    for line in result.log_path.read_text(errors="replace").splitlines():
        if "DagRun Finished" in line and "run_id=" in line:
            run_id = line.split("run_id=", 1)[1].split(",", 1)[0]
    db = settings.path(settings.airflow_home) / "airflow.db"
    if run_id is None or not db.exists():
        return {}
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (result.dag_id, run_id),
        ).fetchall()
    return {task: state or "none" for task, state in rows}


def failed_tasks(settings: Settings, result: DagRunResult) -> list[str]:
    """Task ids that ended failed in the run."""
    return sorted(t for t, s in task_states(settings, result).items() if s == "failed")
