from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jobs.airflow_local import airflow_env
from jobs.settings import Settings
from jobs.spark import default_conf
from jobs.threads import thread_env
from tests.conftest import ROOT


def test_a_short_openmp_spin_unless_the_user_chose(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    assert thread_env() == {"GOMP_SPINCOUNT": "1000"}
    assert thread_env({"GOMP_SPINCOUNT": "300000"}) == {"GOMP_SPINCOUNT": "300000"}
    settings = Settings(home=tmp_path)
    assert airflow_env(settings)["GOMP_SPINCOUNT"] == "1000"  # every embedded DAG run's task processes
    assert default_conf(settings)["spark.executorEnv.GOMP_SPINCOUNT"] == "1000"  # a cluster's executors
    monkeypatch.setenv("GOMP_SPINCOUNT", "300000")
    assert airflow_env(settings)["GOMP_SPINCOUNT"] == "300000"
    assert default_conf(settings)["spark.executorEnv.GOMP_SPINCOUNT"] == "300000"


def test_the_cli_sets_it_before_a_command_runs() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    code = (
        "import os, sys\n"
        "from jobs import cli\n"
        "cli.app = lambda: print('OMP', os.environ.get('GOMP_SPINCOUNT'))\n"
        "cli.main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert "OMP 1000" in done.stdout
