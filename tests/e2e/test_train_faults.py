"""Fault injection on training: a process killed right after MLflow registered its model version."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow

from jobs.faults import FAULT_ENV, MLFLOW_AFTER_REGISTER
from jobs.training.registry import aliases
from jobs.training.train import model_name
from tests.e2e.conftest import END

ROOT = Path(__file__).resolve().parents[2]
#: a small fit: the point is the registry, not the model
TRAIN = [sys.executable, "-m", "jobs.cli", "train", "model", "xgboost", "--ds", END, "--no-tune"]
TRAIN += ["--params", json.dumps({"n_estimators": 20, "early_stopping_rounds": 5})]


def _train(settings, fault: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    env["MSP_HOME"] = str(settings.home)
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run(TRAIN, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_a_training_killed_after_registration_leaves_the_registry_consistent_and_the_rerun_completes(
    trained: dict,
) -> None:
    settings = trained["settings"]
    client = mlflow.MlflowClient()
    name = model_name(settings, "xgboost")
    before = aliases(settings)
    champion = client.get_model_version_by_alias(name, "champion")
    versions = {v.version for v in client.search_model_versions(f"name = '{name}'")}

    killed = _train(settings, MLFLOW_AFTER_REGISTER)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]

    # the half-finished version exists, but no alias moved to it: scoring and promotion do not see it
    orphan = max((v for v in client.search_model_versions(f"name = '{name}'")), key=lambda v: int(v.version))
    assert orphan.version not in versions
    assert aliases(settings) == before
    assert not orphan.aliases
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert loaded.metadata.run_id == champion.run_id
    assert client.get_run(orphan.run_id).info.status == "RUNNING"  # nobody ended it: the process died

    rerun = _train(settings, None)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    result = json.loads(rerun.stdout[rerun.stdout.index("{") :])
    assert int(result["version"]) > int(orphan.version)
    assert aliases(settings)[name] == {"champion": before[name]["champion"], "challenger": result["version"]}
    # the rerun closed the dead attempt's run and marked its version, so the UI does not show them as live
    dead = client.get_run(orphan.run_id)
    assert dead.info.status == "FAILED" and dead.data.tags["msp.status"] == "interrupted"
    assert client.get_model_version(name, orphan.version).tags["msp.status"] == "interrupted"
    assert client.get_run(result["run_id"]).info.status == "FINISHED"
