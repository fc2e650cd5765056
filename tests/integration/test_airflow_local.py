"""The embedded Airflow's metadata database: migrated once per process and home, again when it is gone."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from jobs.airflow_local import ensure_db
from jobs.settings import Settings


def test_the_metadata_database_is_migrated_once_per_process_and_again_when_removed(tmp_path, monkeypatch) -> None:
    settings = Settings(home=tmp_path)
    database = tmp_path / settings.airflow_home / "airflow.db"
    ensure_db(settings)
    with closing(sqlite3.connect(database)) as con:
        (revision,) = con.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision
    # `airflow db migrate` is a ~9 s subprocess: a second call must not start one (it could not: no binary)
    with monkeypatch.context() as patch:
        patch.setattr("jobs.airflow_local.airflow_bin", lambda: str(tmp_path / "no-such-airflow"))
        ensure_db(settings)
        database.unlink()
        with pytest.raises(FileNotFoundError):  # gone: migrated again
            ensure_db(settings)
    ensure_db(settings)
    assert database.exists()


def test_msp_airflow_is_airflows_cli_on_the_embedded_home(tmp_path) -> None:
    """``msp airflow ARGS`` passes ARGS to Airflow's CLI with this repository's DAGs and the home's database."""
    msp = str(Path(sys.executable).with_name("msp"))
    env = {**os.environ, "MSP_HOME": str(tmp_path)}
    listed = subprocess.run(
        [msp, "airflow", "dags", "list", "--local", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    line = next(x for x in reversed(listed.stdout.splitlines()) if x.startswith("["))
    dags = {d["dag_id"] for d in json.loads(line)}
    assert {"marketing_ingest", "marketing_train", "marketing_score", "marketing_evaluate"} <= dags
    assert (tmp_path / Settings(home=tmp_path).airflow_home / "airflow.db").exists()
    wrong = subprocess.run(
        [msp, "airflow", "dags", "no-such-command"], env=env, capture_output=True, timeout=300, check=False
    )
    assert wrong.returncode != 0
