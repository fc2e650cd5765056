"""A Spark standalone master and one worker on loopback, for tests that need a real cluster.

The same processes stack mode starts (:mod:`jobs.stack`: ``spark-class`` Master and Worker from the
pyspark distribution, with :func:`jobs.stack.spark_env`), here on free ports under a temporary home.
Each runs in its own session, so stopping kills its whole process group: the JVM, and for the worker
the executors and their Python workers too.

A driver that connects needs ``SPARK_LOCAL_IP=127.0.0.1`` (the executors reach it there) and
``PYSPARK_PYTHON`` set to this interpreter; :func:`driver_env` gives both.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.settings import Settings
from jobs.stack import spark_env, spark_home

log = logging.getLogger(__name__)
HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class StandaloneCluster:
    """Where a running test cluster answers and keeps its files."""

    master_url: str  # spark://127.0.0.1:P
    ui_url: str  # the master's web UI; /json/ is its state
    work_dir: Path  # the worker's application folders: <app-id>/<executor-id>/stderr
    log_dir: Path  # master.log, worker.log

    def state(self) -> dict[str, Any]:
        """The master's /json/ answer: status, workers, active and completed applications."""
        with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=5) as response:
            return json.loads(response.read())

    def applications(self) -> list[dict[str, Any]]:
        state = self.state()
        return [*state.get("activeapps", []), *state.get("completedapps", [])]

    def executor_logs(self, app_id: str) -> str:
        """Everything the application's executors wrote to stderr on the worker."""
        return "".join(p.read_text(errors="replace") for p in sorted((self.work_dir / app_id).glob("*/stderr")))


def driver_env() -> dict[str, str]:
    """The environment of a driver process that connects to the cluster."""
    return {**os.environ, "SPARK_LOCAL_IP": HOST, "PYSPARK_PYTHON": sys.executable}


@contextlib.contextmanager
def standalone_cluster(
    home: Path, cores: int = 2, memory: str = "2g", timeout_s: float = 120.0
) -> Iterator[StandaloneCluster]:
    """Start a master and one worker (``cores``, ``memory``) under ``home``; stop both on exit."""
    settings = Settings(home=home, stack_spark_port=free_port(), stack_spark_ui_port=free_port())
    env = spark_env(settings)  # SPARK_HOME, SPARK_LOCAL_IP, no daemonizing, log and work dirs under home
    cluster = StandaloneCluster(
        master_url=f"spark://{HOST}:{settings.stack_spark_port}",
        ui_url=f"http://{HOST}:{settings.stack_spark_ui_port}",
        work_dir=Path(env["SPARK_WORKER_DIR"]),
        log_dir=Path(env["SPARK_LOG_DIR"]),
    )
    cluster.work_dir.mkdir(parents=True, exist_ok=True)
    cluster.log_dir.mkdir(parents=True, exist_ok=True)
    spark_class = str(spark_home() / "bin" / "spark-class")
    master = [spark_class, "org.apache.spark.deploy.master.Master", "--host", HOST]
    master += ["--port", str(settings.stack_spark_port), "--webui-port", str(settings.stack_spark_ui_port)]
    worker = [spark_class, "org.apache.spark.deploy.worker.Worker", cluster.master_url, "--host", HOST]
    worker += ["--webui-port", str(free_port()), "--cores", str(cores), "--memory", memory]
    worker += ["--work-dir", str(cluster.work_dir)]
    processes: list[subprocess.Popen] = []
    started = time.monotonic()
    try:
        processes.append(_start(master, env, cluster.log_dir / "master.log"))
        _wait(lambda: cluster.state().get("status") == "ALIVE", processes, timeout_s, "the master to be ALIVE")
        processes.append(_start(worker, env, cluster.log_dir / "worker.log"))
        _wait(
            lambda: sum(w["cores"] for w in cluster.state()["workers"] if w["state"] == "ALIVE") >= cores,
            processes,
            timeout_s,
            f"a worker with {cores} cores to register",
        )
        log.info("standalone cluster %s up in %.1f s", cluster.master_url, time.monotonic() - started)
        yield cluster
    finally:
        for process in reversed(processes):
            _stop(process)


def _start(args: list[str], env: dict[str, str], log_file: Path) -> subprocess.Popen:
    with log_file.open("ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait(ready, processes: list[subprocess.Popen], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError, KeyError):
            if ready():
                return
        if dead := [p.args[1] for p in processes if p.poll() is not None]:
            raise RuntimeError(f"{', '.join(dead)} exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")
        time.sleep(0.5)


def _stop(process: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM to the process group, SIGKILL after ``grace_s``; never leaves a JVM behind."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:  # the group may outlive its leader (executors): make sure
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        return
