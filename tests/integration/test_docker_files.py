"""docker/: the compose file is valid Compose, the Dockerfile passes hadolint, and both match stack mode.

No Docker engine runs here: the compose file is validated against the Compose specification's JSON
schema (vendored by check-jsonschema), the Dockerfile by hadolint; parity with ``make stack-up`` is
checked on the configuration itself (jobs/stack.py builds the same variables).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jobs.settings import Settings
from jobs.stack import AIRFLOW_COMPONENTS, DATABASES, airflow_stack_vars, credentials, mlflow_server_vars, task_env
from tests.conftest import ROOT

DOCKER = ROOT / "docker"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())  # anchors and merge keys resolved


def test_compose_file_follows_the_compose_specification() -> None:
    done = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(DOCKER / "compose.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_catches_a_broken_compose_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  web:\n    image: nginx\n    ports: 8080\n    restart: sometimes-maybe\n")
    done = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "ports" in done.stdout


def test_dockerfiles_pass_hadolint() -> None:
    files = sorted(DOCKER.glob("Dockerfile*"))
    assert files
    done = subprocess.run([str(BIN / "hadolint"), *map(str, files)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_pins_its_base_runs_as_non_root_and_installs_from_the_lock() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", text, re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert "--require-hashes -r requirements/lock.txt" in text


def test_compose_publishes_ports_on_loopback_only(compose: dict) -> None:
    published = [(name, p) for name, s in compose["services"].items() for p in s.get("ports", [])]
    assert published
    assert [(n, p) for n, p in published if not str(p).startswith("127.0.0.1:")] == []


def test_compose_matches_stack_mode(compose: dict, tmp_path: Path) -> None:
    """The same services, databases and configuration variables as ``make stack-up``."""
    services = compose["services"]
    assert {f"airflow-{c}" for c in AIRFLOW_COMPONENTS} | {"mlflow", "spark-master", "spark-worker"} <= set(services)
    settings = Settings(home=tmp_path)
    creds = credentials(settings)
    local_airflow = set(airflow_stack_vars(settings, creds))
    for component in AIRFLOW_COMPONENTS:
        env = services[f"airflow-{component}"]["environment"]
        assert local_airflow - set(env) == set(), component
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert set(task_env(settings, creds)) - {"MSP_HOME", "SPARK_LOCAL_IP"} <= set(
        services["airflow-scheduler"]["environment"]
    )
    local_mlflow = set(mlflow_server_vars(settings, creds))
    assert local_mlflow <= set(services["mlflow"]["environment"])
    # the scheduler and triggerer skip their log servers in both (they would bind every interface)
    assert "--skip-serve-logs" in services["airflow-scheduler"]["command"]
    assert "--skip-serve-logs" in services["airflow-triggerer"]["command"]
    init_sql = (DOCKER / "postgres-init.sql").read_text()
    created = set(re.findall(r"CREATE DATABASE (\w+)", init_sql)) | {services["postgres"]["environment"]["POSTGRES_DB"]}
    assert created == {f"msp_{name}" for name in DATABASES}
