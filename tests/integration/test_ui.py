"""``make ui``: the Airflow UI (standalone) and the MLflow UI come up healthy on loopback and stop cleanly."""

from __future__ import annotations

import socket
import urllib.request

from jobs.settings import Settings
from jobs.ui import HOST, password_file, start, stop, wait_healthy


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def test_both_uis_serve_on_loopback_and_stop(tmp_path):
    settings = Settings(home=tmp_path)
    airflow_port, mlflow_port = free_port(), free_port()
    procs = start(settings, airflow_port, mlflow_port)
    try:
        healthy = wait_healthy(procs, timeout_s=240)
        logs = {p.name: p.log_path.read_text(errors="replace")[-3000:] for p in procs}
        assert healthy == {"airflow": True, "mlflow": True}, logs
        search = f"http://{HOST}:{mlflow_port}/ajax-api/2.0/mlflow/experiments/search?max_results=5"
        with urllib.request.urlopen(search) as r:
            assert settings.mlflow_experiment.encode() in r.read()
        with urllib.request.urlopen(f"http://{HOST}:{airflow_port}/api/v2/monitor/health") as r:
            assert r.status == 200
        assert password_file(settings).exists()  # the generated admin password, as printed by `make ui`
    finally:
        stop(procs)
    assert all(p.process.poll() is not None for p in procs)
