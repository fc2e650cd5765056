"""Shared end-to-end fixtures: one simulated shop, ingested and trained once for the score and train tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import pytest

from jobs.airflow_local import dags_test, failed_tasks
from jobs.pipeline.run import clean_step, ingest_step
from jobs.settings import Settings
from jobs.simulator.config import SimConfig
from jobs.simulator.engine import simulate
from jobs.training.train import configure_mlflow
from jobs.warehouse import Warehouse

# the demo's size: four campaigns (days 7, 21, 35, 49) of about 9,000 customers each
CFG = SimConfig(seed=5, customers=20_000, products=400, days=60)
START, END = CFG.start.isoformat(), CFG.end.isoformat()
TABLES = ("customers", "products", "events", "orders", "campaign_log")


@contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (child processes such as ``airflow dags test`` see them)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in values.items():
            patch.setenv(key, value)
        yield


@pytest.fixture(scope="package")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("train")
    settings = Settings(home=home, tuning_budget_s=15)
    with environ({"MSP_HOME": str(home), "MSP_TUNING_BUDGET_S": "15"}):
        simulate(CFG, settings.landing, settings.truth)
        for table in TABLES:  # ingestion has its own end-to-end test; here only its output matters
            ingest_step(settings, table, END, START)
            clean_step(settings, table, END, START)
        run = dags_test(settings, "marketing_train", END, {"ds": END})
        assert run.ok, f"DAG run {run.state}, failed tasks {failed_tasks(settings, run)}; see {run.log_path}"
        configure_mlflow(settings)
        yield {"settings": settings, "run": run}


def run_score(settings: Settings, env: dict[str, str] | None = None) -> None:
    with environ(env or {}):
        run = dags_test(settings, "marketing_score", END, {"ds": END})
    assert run.ok, f"DAG run {run.state}, failed tasks {failed_tasks(settings, run)}; see {run.log_path}"


def rows(url: str, schema: str = "marketing", run_date: str = END) -> pd.DataFrame:
    """The assignments of one run date (the closed-loop test scores later nights in the same warehouse)."""
    frame = Warehouse(url, schema).query(
        f"SELECT * FROM {schema}.strategy_assignments WHERE run_date = DATE '{run_date}' ORDER BY customer_id"
    )
    return frame.drop(columns=["scored_at"]).reset_index(drop=True)


@pytest.fixture(scope="package")
def scored(trained: dict) -> dict:
    settings = trained["settings"]
    run_score(settings)
    return {"settings": settings, "duckdb": rows(settings.resolved_warehouse_url)}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The closed-loop tests advance the shop's clock (later nights, answers in silver): run them last of e2e.

    They stay inside the e2e block, so the package-scoped fixtures are built once.
    """
    loop = [i for i, item in enumerate(items) if item.path.name == "test_evaluate_dag.py"]
    if not loop:
        return
    e2e = [i for i, item in enumerate(items) if item.path.parent.name == "e2e"]
    moved = [items[i] for i in loop]
    rest = [item for i, item in enumerate(items) if i not in set(loop)]
    last_e2e = max(rest.index(items[i]) for i in e2e if i not in set(loop)) if len(e2e) > len(loop) else -1
    items[:] = rest[: last_e2e + 1] + moved + rest[last_e2e + 1 :]
