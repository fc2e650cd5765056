"""``MspSparkSubmitOperator``: a DAG's Spark step through a real ``spark-submit`` (local master here; the
stack-mode e2e submits to a standalone master), its result as XCom, its date on the asset event, and
Airflow's semantics for failures (data errors are not retried; a missing connection says so)."""

from __future__ import annotations

import gzip
import json
import sqlite3
import textwrap
from pathlib import Path

import duckdb
import pytest

from jobs.airflow_local import airflow_env, ensure_db
from jobs.operators import APPLICATION, MspSparkSubmitOperator, submit_conf
from jobs.settings import Settings
from jobs.simulator.config import SimConfig
from jobs.simulator.engine import simulate

CFG = SimConfig(seed=3, customers=300, products=20, days=3)
START, END = CFG.start.isoformat(), CFG.end.isoformat()

DAG_FILE = """
from datetime import datetime, timedelta

from airflow.sdk import Asset, dag

from jobs.operators import MspSparkSubmitOperator

SILVER = Asset(name="msp.silver.customers", uri="msp://lake/silver/customers")


@dag(dag_id="submit_check", schedule=None, start_date=datetime(2026, 9, 1), catchup=False, tags=["test"])
def submit_check():
    ingest = MspSparkSubmitOperator(task_id="ingest_customers", step="ingest", table="customers",
                                    ds="{{ params.ds }}", since="{{ params.since }}", retries=0)
    clean = MspSparkSubmitOperator(task_id="clean_customers", step="clean", table="customers",
                                   ds="{{ params.ds }}", since="{{ params.since }}", outlets=[SILVER], retries=0)
    broken = MspSparkSubmitOperator(task_id="ingest_orders", step="ingest", table="orders",
                                    ds="{{ params.ds }}", since="{{ params.since }}", retries=2,
                                    retry_delay=timedelta(seconds=1))
    nowhere = MspSparkSubmitOperator(task_id="no_connection", step="ingest", table="products",
                                     ds="{{ params.ds }}", conn_id="msp_nowhere", retries=2,
                                     retry_delay=timedelta(seconds=1))
    ingest >> clean


submit_check()
"""


def test_step_arguments_and_conf(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    op = MspSparkSubmitOperator(task_id="t", step="clean", table="orders", ds="2026-09-03", since="2026-09-01")
    assert op.application == APPLICATION and Path(APPLICATION).name == "submit.py"
    assert op.step_args(Path("/r.json")) == [
        "clean",
        *("--ds", "2026-09-03", "--since", "2026-09-01", "--table", "orders", "--result-file", "/r.json"),
    ]
    rebuild = MspSparkSubmitOperator(task_id="f", step="score_features", ds="2026-09-03", rebuild="True")
    assert rebuild.step_args(Path("/r.json"))[-3:] == ["--rebuild", "--result-file", "/r.json"]
    assert "--rebuild" not in MspSparkSubmitOperator(task_id="g", step="features", ds="x", rebuild="False").step_args(
        Path("/r.json")
    )
    assert {"ds", "since", "table", "rebuild", "application_args"} <= set(MspSparkSubmitOperator.template_fields)
    conf = submit_conf(settings)
    assert conf["spark.sql.session.timeZone"] == "UTC"  # the in-process session's conf, not spark-submit's defaults
    assert conf["spark.sql.sources.partitionOverwriteMode"] == "dynamic"
    assert conf["spark.pyspark.python"].endswith("python") and op.name == "msp-clean-orders"


@pytest.fixture(scope="module")
def submitted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The test DAG run once through ``airflow dags test`` with a local-master Spark connection."""
    import subprocess

    home = tmp_path_factory.mktemp("submit")
    settings = Settings(home=home)
    simulate(CFG, settings.landing, settings.truth)
    broken = settings.landing / "orders" / f"ds={END}" / "part-00001.jsonl.gz"
    broken.write_bytes(gzip.compress(b'{"order_id": "o-1"}\n' * 200)[:60])  # a truncated export
    dags = home / "dags"
    dags.mkdir()
    (dags / "submit_check.py").write_text(textwrap.dedent(DAG_FILE))
    ensure_db(settings)
    env = {
        **airflow_env(settings),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW_CONN_MSP_SPARK": json.dumps({"conn_type": "spark", "host": "local[2]"}),
        "MSP_SPARK_DRIVER_MEMORY": "1g",
    }
    log = home / "run.log"
    conf = json.dumps({"ds": END, "since": START})
    with open(log, "w") as fh:
        args = [env["PATH"].split(":")[0] + "/airflow", "dags", "test", "submit_check", END, "-c", conf]
        subprocess.run(args, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False, timeout=600)
    with sqlite3.connect(settings.path(settings.airflow_home) / "airflow.db") as con:
        tis = {
            task: (state, tries)
            for task, state, tries in con.execute(
                "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = 'submit_check'"
            )
        }
        xcom = dict(
            con.execute("SELECT task_id, value FROM xcom WHERE dag_id = 'submit_check' AND key = 'return_value'")
        )
        events = [json.loads(extra or "{}") for (extra,) in con.execute("SELECT extra FROM asset_event")]
    return {"settings": settings, "tis": tis, "xcom": xcom, "events": events, "log": log.read_text(errors="replace")}


def test_the_steps_run_through_spark_submit_and_return_their_result(submitted: dict) -> None:
    tis, log = submitted["tis"], submitted["log"]
    assert tis["ingest_customers"][0] == "success", log[-4000:]
    assert tis["clean_customers"][0] == "success", log[-4000:]
    assert "spark-submit" in log and "submit.py" in log  # the provider's hook ran the command
    settings = submitted["settings"]
    silver = settings.lake / "silver" / "customers"
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{silver}/ds=*/*.parquet')").fetchall()[0][0]
    assert rows > 0 and {p.name for p in silver.iterdir()} >= {f"ds={START}"}
    result = json.loads(submitted["xcom"]["clean_customers"])  # the step's own result, as in embedded mode
    if isinstance(result, str):
        result = json.loads(result)
    assert result["table"] == "customers" and result["silver"] == rows
    assert {"ds": END, "since": START} in submitted["events"]  # marketing_train reads its run date from this


def test_a_data_error_fails_without_retry_and_names_the_file(submitted: dict) -> None:
    state, tries = submitted["tis"]["ingest_orders"]
    assert state == "failed" and tries == 1, submitted["tis"]  # retries=2, but a truncated file does not heal
    assert "part-00001.jsonl.gz: truncated gzip file" in submitted["log"]


def test_a_missing_connection_fails_with_what_to_set(submitted: dict) -> None:
    state, tries = submitted["tis"]["no_connection"]
    assert state == "failed" and tries == 1
    assert "AIRFLOW_CONN_MSP_NOWHERE" in submitted["log"]
