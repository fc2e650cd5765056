"""Stack mode: the production-like services on one machine, without Docker (``make stack-up``).

What :func:`up` starts, each process in its own session with a pid file and a log under
``<stack_dir>`` (default ``var/stack``), everything bound to ``stack_host`` (loopback by default):

* PostgreSQL databases ``<prefix>_airflow``, ``<prefix>_mlflow``, ``<prefix>_mlflow_auth`` and
  ``<prefix>_warehouse`` on the server of ``stack_postgres_url`` (created when missing);
* Airflow: ``airflow db migrate``, then the scheduler (LocalExecutor), dag-processor, triggerer and
  api-server; metadata on PostgreSQL; the simple auth manager with the stack login;
* MLflow: ``mlflow server`` with the basic-auth app (``mlflow/start-server.sh``): backend store
  PostgreSQL, artifacts served by the server from a local folder (or ``MLFLOW_ARTIFACTS_DESTINATION``);
* Spark: a standalone master and one worker from the pyspark distribution (``spark-class``).

The login (``stack_admin_user`` / ``stack_admin_password``) is the same for both UIs; with no
password set, one is generated on the first ``up`` into ``<stack_dir>/credentials.json`` (mode 600),
with the JWT secret Airflow's components share and the MLflow server's CSRF secret. The scheduler
and triggerer run without their log servers (``--skip-serve-logs``): those bind every interface,
and on one machine the api-server reads task logs from the shared folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jobs.airflow_local import REPO, airflow_bin, airflow_env
from jobs.settings import Settings

log = logging.getLogger(__name__)

AIRFLOW_COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
#: the key of each Airflow component in the api-server's /api/v2/monitor/health answer
AIRFLOW_HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
DATABASES = ("airflow", "mlflow", "mlflow_auth", "warehouse")


class StackError(RuntimeError):
    """A stack component could not be started, or did not become healthy in time."""


@dataclass(frozen=True)
class Component:
    """One long-running process of the stack."""

    name: str
    args: list[str]
    env: dict[str, str] = field(repr=False)
    url: str | None = None  # what a person opens (UIs)


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str
    jwt_secret: str
    mlflow_secret_key: str


def stack_dir(settings: Settings) -> Path:
    return settings.path(settings.stack_dir)


def credentials(settings: Settings) -> Credentials:
    """The stack login and shared secrets: from settings, else generated once into credentials.json (0600)."""
    path = stack_dir(settings) / "credentials.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted = {
        "user": settings.stack_admin_user,
        "password": (
            settings.stack_admin_password.get_secret_value()
            if settings.stack_admin_password
            else stored.get("password") or secrets.token_urlsafe(18)
        ),
        "jwt_secret": stored.get("jwt_secret") or secrets.token_urlsafe(32),
        "mlflow_secret_key": stored.get("mlflow_secret_key") or secrets.token_urlsafe(32),
    }
    if wanted != stored:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(wanted, fh, indent=2)
    return Credentials(**wanted)


def database_url(settings: Settings, name: str, driver: str = "postgresql") -> str:
    """The URL of stack database ``name`` (one of DATABASES) on the server of ``stack_postgres_url``."""
    if name not in DATABASES:
        raise ValueError(f"unknown stack database {name!r} (one of {', '.join(DATABASES)})")
    parts = urlsplit(settings.stack_postgres_url.get_secret_value())
    return urlunsplit((driver, parts.netloc, f"/{settings.stack_database_prefix}_{name}", parts.query, ""))


def ensure_databases(settings: Settings) -> list[str]:
    """Create the stack's databases that do not exist yet; returns those created."""
    import psycopg
    from psycopg import sql

    created = []
    with psycopg.connect(settings.stack_postgres_url.get_secret_value(), autocommit=True, connect_timeout=5) as con:
        for name in DATABASES:
            db = f"{settings.stack_database_prefix}_{name}"
            if con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is None:
                con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
                created.append(db)
    return created


def service_urls(settings: Settings) -> dict[str, str]:
    h = settings.stack_host
    return {
        "airflow": f"http://{h}:{settings.stack_airflow_port}",
        "mlflow": f"http://{h}:{settings.stack_mlflow_port}",
        "spark": f"spark://{h}:{settings.stack_spark_port}",
        "spark-ui": f"http://{h}:{settings.stack_spark_ui_port}",
        "spark-worker-ui": f"http://{h}:{settings.stack_spark_worker_ui_port}",
    }


def task_env(settings: Settings, creds: Credentials) -> dict[str, str]:
    """What the DAGs' tasks see in stack mode: the stack's MLflow server, warehouse and Spark master."""
    urls = service_urls(settings)
    return {
        "MSP_HOME": str(settings.home),
        "MSP_MLFLOW_TRACKING_URI": urls["mlflow"],
        "MLFLOW_TRACKING_USERNAME": creds.user,
        "MLFLOW_TRACKING_PASSWORD": creds.password,
        "MSP_WAREHOUSE_URL": database_url(settings, "warehouse"),
        "MSP_SPARK_MASTER": urls["spark"],
        "MSP_SPARK_CONF": json.dumps(stack_spark_conf(settings)),
        "MSP_SPARK_SHORT_LIVED_JVM": str(settings.spark_short_lived_jvm).lower(),
        # the DAGs' Spark steps go through spark-submit (SparkSubmitOperator) to the stack's master
        "MSP_SPARK_SUBMIT": "true",
        "MSP_SPARK_CONN_ID": settings.spark_conn_id,
        f"AIRFLOW_CONN_{settings.spark_conn_id.upper()}": spark_connection(urls["spark"]),
        "SPARK_LOCAL_IP": settings.stack_host,  # the driver binds where the executors reach it
        "PYSPARK_PYTHON": sys.executable,  # executors run this venv's interpreter
    }


def stack_spark_conf(settings: Settings) -> dict[str, str]:
    """The jobs' Spark conf on the stack, then ``MSP_SPARK_CONF`` (it wins).

    Each application takes half the worker's cores (two run at once, instead of one holding the
    worker while the next waits), and shuffles into twice the worker's cores: Spark's default of 200
    partitions for a cluster master made every small step of the DAGs spend minutes on empty tasks.
    """
    cores = settings.stack_spark_worker_cores
    conf = {"spark.cores.max": str(max(1, cores // 2)), "spark.sql.shuffle.partitions": str(max(2, 2 * cores))}
    return {**conf, **settings.spark_conf}


def spark_connection(master: str) -> str:
    """The Airflow connection (JSON) of a Spark master for spark-submit, client deploy mode."""
    extra = {"deploy-mode": "client", "spark-binary": "spark-submit"}
    return json.dumps({"conn_type": "spark", "host": master, "extra": extra})


def _inherited(env: dict[str, str]) -> dict[str, str]:
    """``env`` without MLflow client variables: the fluent API exports them, and the stack sets its own."""
    return {k: v for k, v in env.items() if not k.startswith("MLFLOW_")}


def airflow_stack_vars(settings: Settings, creds: Credentials) -> dict[str, str]:
    """Airflow's configuration in stack mode (the variables docker/compose.yaml sets too)."""
    home = stack_dir(settings) / "airflow"
    urls = service_urls(settings)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url(settings, "airflow", "postgresql+psycopg2"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__HOST": settings.stack_host,
        "AIRFLOW__API__PORT": str(settings.stack_airflow_port),
        "AIRFLOW__API__WORKERS": "1",  # one machine, two cores: one api-server worker process
        "AIRFLOW__API__BASE_URL": urls["airflow"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{urls['airflow']}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": creds.jwt_secret,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{creds.user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
    }


def airflow_stack_env(settings: Settings, creds: Credentials) -> dict[str, str]:
    """The whole environment of Airflow's components: embedded defaults, task settings, stack config."""
    return {
        **_inherited(airflow_env(settings)),
        **task_env(settings, creds),
        **airflow_stack_vars(settings, creds),
    }


def mlflow_server_vars(settings: Settings, creds: Credentials) -> dict[str, str]:
    """What ``mlflow/start-server.sh`` reads (the variables docker/compose.yaml sets too)."""
    folder = stack_dir(settings) / "mlflow"
    return {
        "MLFLOW_BACKEND_STORE_URI": database_url(settings, "mlflow", "postgresql+psycopg2"),
        "MLFLOW_AUTH_DATABASE_URI": database_url(settings, "mlflow_auth", "postgresql+psycopg2"),
        "MLFLOW_ARTIFACTS_DESTINATION": os.environ.get("MLFLOW_ARTIFACTS_DESTINATION")
        or (folder / "artifacts").as_uri(),
        "MLFLOW_AUTH_ADMIN_USERNAME": creds.user,
        "MLFLOW_AUTH_ADMIN_PASSWORD": creds.password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": creds.mlflow_secret_key,  # CSRF protection of the auth app
        "MLFLOW_STATE_DIR": str(folder),
        "MLFLOW_HOST": settings.stack_host,
        "MLFLOW_PORT": str(settings.stack_mlflow_port),
    }


def mlflow_env(settings: Settings, creds: Credentials) -> dict[str, str]:
    return {
        **_inherited(dict(os.environ)),
        **mlflow_server_vars(settings, creds),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def spark_env(settings: Settings) -> dict[str, str]:
    folder = stack_dir(settings) / "spark"
    return {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": settings.stack_host,
        "SPARK_LOG_DIR": str(folder / "logs"),
        "SPARK_WORKER_DIR": str(folder / "work"),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_NO_DAEMONIZE": "1",
    }


def components(settings: Settings, creds: Credentials) -> list[Component]:
    """Every long-running process, in start order."""
    urls = service_urls(settings)
    airflow = airflow_stack_env(settings, creds)
    spark_class = str(spark_home() / "bin" / "spark-class")
    out = []
    for name in AIRFLOW_COMPONENTS:
        args = [airflow_bin(), name]
        if name in ("scheduler", "triggerer"):
            args.append("--skip-serve-logs")
        out.append(Component(f"airflow-{name}", args, airflow, urls["airflow"] if name == "api-server" else None))
    out.append(
        Component(
            "mlflow", ["bash", str(REPO / "mlflow" / "start-server.sh")], mlflow_env(settings, creds), urls["mlflow"]
        )
    )
    spark = spark_env(settings)
    h = settings.stack_host
    out.append(
        Component(
            "spark-master",
            [
                spark_class,
                "org.apache.spark.deploy.master.Master",
                "--host",
                h,
                "--port",
                str(settings.stack_spark_port),
                "--webui-port",
                str(settings.stack_spark_ui_port),
            ],
            spark,
            urls["spark-ui"],
        )
    )
    out.append(
        Component(
            "spark-worker",
            [
                spark_class,
                "org.apache.spark.deploy.worker.Worker",
                urls["spark"],
                "--host",
                h,
                "--webui-port",
                str(settings.stack_spark_worker_ui_port),
                "--cores",
                str(settings.stack_spark_worker_cores),
                "--memory",
                settings.stack_spark_worker_memory,
                "--work-dir",
                str(stack_dir(settings) / "spark" / "work"),
            ],
            spark,
            urls["spark-worker-ui"],
        )
    )
    return out


def _pid_file(settings: Settings, name: str) -> Path:
    return stack_dir(settings) / "run" / f"{name}.pid"


def _log_file(settings: Settings, name: str) -> Path:
    return stack_dir(settings) / "logs" / f"{name}.log"


def running_pid(settings: Settings, name: str) -> int | None:
    """The pid of component ``name`` if its pid file names a live process of ours, else None."""
    import psutil

    path = _pid_file(settings, name)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        proc = psutil.Process(record["pid"])
        if proc.create_time() != record["started"] or proc.status() == psutil.STATUS_ZOMBIE:
            return None  # the pid was reused by another process, or ours exited
    except (ValueError, KeyError, psutil.Error):
        return None
    return record["pid"]


def _start(settings: Settings, component: Component) -> int:
    import psutil

    if pid := running_pid(settings, component.name):
        log.info("%s is already running (pid %d)", component.name, pid)
        return pid
    log_path = _log_file(settings, component.name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _pid_file(settings, component.name).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as fh:
        fh.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(component.args)}\n")
        fh.flush()
        proc = subprocess.Popen(
            component.args,
            env=component.env,
            cwd=settings.home,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stack-down stops the whole tree
        )
    record = {"pid": proc.pid, "started": psutil.Process(proc.pid).create_time(), "args": component.args}
    _pid_file(settings, component.name).write_text(json.dumps(record))
    log.info("started %s (pid %d), log %s", component.name, proc.pid, log_path)
    return proc.pid


def migrate_airflow(settings: Settings, creds: Credentials) -> None:
    """``airflow db migrate`` against the stack's metadata database, and the UI login."""
    env = airflow_stack_env(settings, creds)
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    fd = os.open(passwords, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({creds.user: creds.password}, fh)
    log_path = _log_file(settings, "airflow-db-migrate")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as fh:
        done = subprocess.run(
            [airflow_bin(), "db", "migrate"], env=env, stdout=fh, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        raise StackError(f"airflow db migrate failed ({done.returncode}); log: {log_path}")


def _get_json(url: str, timeout: float = 3.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def health(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per component: pid (or None), healthy, detail, url."""
    creds = credentials(settings)
    urls = service_urls(settings)
    report: dict[str, dict[str, Any]] = {}
    for c in components(settings, creds):
        report[c.name] = {"pid": running_pid(settings, c.name), "healthy": False, "detail": "not running", "url": c.url}
    try:
        answer = _get_json(f"{urls['airflow']}/api/v2/monitor/health")
        report["airflow-api-server"].update(healthy=True, detail="answers /api/v2/monitor/health")
        for name, key in AIRFLOW_HEALTH_KEYS.items():
            status = (answer.get(key) or {}).get("status")
            report[f"airflow-{name}"].update(healthy=status == "healthy", detail=f"api-server reports {status}")
    except (OSError, ValueError) as exc:
        report["airflow-api-server"]["detail"] = f"no answer: {exc}"
    try:
        with urllib.request.urlopen(f"{urls['mlflow']}/health", timeout=3) as response:
            ok = response.status == 200
        report["mlflow"].update(healthy=ok, detail="answers /health")
    except OSError as exc:
        report["mlflow"]["detail"] = f"no answer: {exc}"
    try:
        master = _get_json(f"{urls['spark-ui']}/json/")
        report["spark-master"].update(healthy=master.get("status") == "ALIVE", detail=f"status {master.get('status')}")
        alive = [w for w in master.get("workers", []) if w.get("state") == "ALIVE"]
        report["spark-worker"].update(
            healthy=bool(alive),
            detail=f"{len(alive)} worker(s) ALIVE, {sum(w.get('cores', 0) for w in alive)} cores",
        )
    except (OSError, ValueError) as exc:
        report["spark-master"]["detail"] = f"no answer: {exc}"
    for entry in report.values():  # a component without its process is not healthy, whatever answers on its port
        if entry["pid"] is None:
            entry["healthy"] = False
    return report


def up(settings: Settings, timeout_s: float = 300.0) -> dict[str, dict[str, Any]]:
    """Start whatever is not running and wait until every component is healthy (else raise StackError)."""
    creds = credentials(settings)
    if created := ensure_databases(settings):
        log.info("created databases %s", ", ".join(created))
    migrate_airflow(settings, creds)
    for c in components(settings, creds):
        _start(settings, c)
    deadline = time.monotonic() + timeout_s
    while True:
        report = health(settings)
        dead = [n for n, e in report.items() if e["pid"] is None]
        if dead:
            raise StackError(f"{', '.join(dead)} exited; see {', '.join(str(_log_file(settings, n)) for n in dead)}")
        if all(e["healthy"] for e in report.values()):
            return report
        if time.monotonic() > deadline:
            sick = {n: e["detail"] for n, e in report.items() if not e["healthy"]}
            raise StackError(f"not healthy after {timeout_s:.0f} s: {sick}; logs under {stack_dir(settings) / 'logs'}")
        time.sleep(2)


def down(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Stop every running component (SIGTERM to its process group, SIGKILL after ``timeout_s``)."""
    import psutil

    stopped = []
    creds = credentials(settings)
    # descendants that left the component's process group (Airflow's task supervisors start their own
    # sessions, and a task's spark-submit driver runs under them): stopped with it, not orphaned
    strays: list[psutil.Process] = []
    for c in reversed(components(settings, creds)):
        pid = running_pid(settings, c.name)
        if pid is not None:
            with contextlib.suppress(psutil.Error):
                strays += [p for p in psutil.Process(pid).children(recursive=True) if _pgid(p.pid) != pid]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            stopped.append((c.name, pid))
    for proc in strays:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    deadline = time.monotonic() + timeout_s
    for name, pid in stopped:
        while running_pid(settings, name) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if running_pid(settings, name) is not None:
            log.warning("%s (pid %d) did not stop in %.0f s: killing it", name, pid, timeout_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        _pid_file(settings, name).unlink(missing_ok=True)
        with contextlib.suppress(ChildProcessError):  # reap it when this process started it (tests)
            os.waitpid(pid, os.WNOHANG)
    _, alive = psutil.wait_procs(strays, timeout=max(1.0, deadline - time.monotonic()))
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            log.warning("%s (pid %d), started by the stack, did not stop: killing it", proc.name(), proc.pid)
            proc.kill()
    return [name for name, _ in stopped]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
