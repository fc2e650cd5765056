"""Test-wide setup: isolate every test run from the developer's var/ and Airflow home."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"

# Before anything imports airflow: a private AIRFLOW_HOME, no example DAGs, unit-test mode off.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="msp-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite's Spark jobs live seconds on small data (as the demo's): C1-only JIT and the serial GC in every
# JVM it starts, the DAG runs' included (jobs.spark.SHORT_LIVED_JVM; the suite-level gain is not yet measured)
os.environ.setdefault("MSP_SPARK_SHORT_LIVED_JVM", "true")
# XGBoost's OpenMP threads spin briefly, as the CLI and the DAGs' tasks have them (jobs/threads.py)
os.environ.setdefault("GOMP_SPINCOUNT", "1000")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by tier from their folder, so `pytest -m "not e2e"` and friends work."""
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in {"integration", "e2e"}:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture
def msp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings rooted in a fresh temporary folder (MSP_HOME), cache cleared before and after."""
    from jobs.settings import get_settings

    monkeypatch.setenv("MSP_HOME", str(tmp_path))
    for key in list(os.environ):
        if key.startswith("MSP_") and key != "MSP_HOME":
            monkeypatch.delenv(key)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def require_datasets() -> Path:
    """The shared real data sets, or a skip that says why (they are present in CI)."""
    if not DATASETS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{DATASETS} is missing in CI: the real-data tests cannot run")
        pytest.skip(f"real data sets not found at {DATASETS} (present in CI; see shared/datasets/README.md)")
    return DATASETS


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """One local Spark session for the whole test run (2 cores, UI off)."""
    from jobs.settings import Settings
    from jobs.spark import get_spark

    home = tmp_path_factory.mktemp("spark-home")
    session = get_spark(Settings(home=home, spark_master="local[2]"), "msp-tests")
    yield session
    session.stop()


# The test PostgreSQL: a fresh database per session on the local cluster (override with MSP_TEST_POSTGRES_URL).


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this test session (cluster started if down), dropped afterwards.

    Never skipped in CI (CI=true): a missing PostgreSQL fails the tests that need it.
    """
    import psycopg

    from tests.support.postgres import POSTGRES_ADMIN_URL, ensure_postgres

    if not ensure_postgres(POSTGRES_ADMIN_URL):
        message = f"PostgreSQL does not answer at {POSTGRES_ADMIN_URL} (and pg_ctlcluster could not start it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    name = f"msp_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(POSTGRES_ADMIN_URL)
    yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
