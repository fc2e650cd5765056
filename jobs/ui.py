"""``make ui``: the Airflow UI (standalone, embedded SQLite) and the MLflow UI (embedded store) on loopback.

Both run as child processes until Ctrl-C; their logs go to ``var/ui/``. Airflow's simple auth
manager generates the ``admin`` password on first start into
``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated``; this module prints where.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from jobs.airflow_local import airflow_bin, airflow_env, ensure_db
from jobs.settings import Settings

log = logging.getLogger(__name__)
HOST = "127.0.0.1"


@dataclass
class UiProcess:
    name: str
    url: str
    health: str
    process: subprocess.Popen
    log_path: Path


def start(settings: Settings, airflow_port: int = 8080, mlflow_port: int | None = 5000) -> list[UiProcess]:
    """Start both UIs bound to loopback (Airflow alone when ``mlflow_port`` is None); returns the processes."""
    from jobs.training.train import configure_mlflow

    logs = settings.path(Path("var/ui"))
    logs.mkdir(parents=True, exist_ok=True)
    ensure_db(settings)
    configure_mlflow(settings)  # creates the store and the experiment, so the UI opens on it
    env = airflow_env(settings)
    env.update(
        {
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(airflow_port),
            "AIRFLOW__API__BASE_URL": f"http://{HOST}:{airflow_port}",
            "AIRFLOW__CORE__EXECUTOR": env.get("AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
        }
    )
    procs = []
    specs = [
        (
            "airflow",
            [airflow_bin(), "standalone"],
            env,
            f"http://{HOST}:{airflow_port}",
            f"http://{HOST}:{airflow_port}/api/v2/monitor/health",
        ),
        (
            "mlflow",
            [
                str(Path(sys.executable).with_name("mlflow")),
                "ui",
                "--backend-store-uri",
                settings.resolved_mlflow_tracking_uri,
                "--default-artifact-root",
                settings.path(settings.mlflow_artifact_root).as_uri(),
                "--host",
                HOST,
                "--port",
                str(mlflow_port),
            ],
            dict(os.environ),
            f"http://{HOST}:{mlflow_port}",
            f"http://{HOST}:{mlflow_port}/health",
        ),
    ]
    if mlflow_port is None:
        specs = specs[:1]
    for name, args, proc_env, url, health in specs:
        path = logs / f"{name}.log"
        fh = open(path, "w")  # noqa: SIM115 - the child writes to it for its whole life
        proc = subprocess.Popen(args, env=proc_env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(UiProcess(name, url, health, proc, path))
        log.info("started %s UI (pid %d), log %s", name, proc.pid, path)
    return procs


def wait_healthy(procs: list[UiProcess], timeout_s: float = 180.0) -> dict[str, bool]:
    """Poll each health URL until it answers 200 (or the process dies, or time runs out)."""
    deadline = time.monotonic() + timeout_s
    healthy = {p.name: False for p in procs}
    while time.monotonic() < deadline and not all(healthy.values()):
        for p in procs:
            if healthy[p.name] or p.process.poll() is not None:
                continue
            try:
                with urllib.request.urlopen(p.health, timeout=3) as response:
                    healthy[p.name] = response.status == 200
            except OSError:
                pass
        if any(p.process.poll() is not None for p in procs if not healthy[p.name]):
            break
        time.sleep(2)
    return healthy


def stop(procs: list[UiProcess]) -> None:
    for p in procs:
        if p.process.poll() is None:
            os.killpg(p.process.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.process.pid, signal.SIGKILL)


def password_file(settings: Settings) -> Path:
    return settings.path(settings.airflow_home) / "simple_auth_manager_passwords.json.generated"
