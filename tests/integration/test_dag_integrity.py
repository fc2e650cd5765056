"""Every DAG file loads in a real Airflow DagBag, quickly, without heavy imports, and is well formed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DAGS = ROOT / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
HEAVY = (
    "pandas",
    "pyspark",
    "tensorflow",
    "keras",
    "xgboost",
    "mlflow",
    "great_expectations",
    "duckdb",
    "sklearn",
)
PARSE_BUDGET_S = 1.0


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_dag_folder_loads_without_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}, dagbag.import_errors
    assert len({dag.fileloc for dag in dagbag.dags.values()}) <= len(DAG_FILES)


def test_dag_files_are_light_to_parse() -> None:
    """Importing a DAG file pulls in none of the heavy libraries and takes well under a second."""
    for path in DAG_FILES:
        check_parse(path)


def check_parse(path: Path) -> None:
    probe = (
        "import importlib.util, json, sys, time\n"
        "import airflow.sdk\n"
        "t = time.perf_counter()\n"
        f"spec = importlib.util.spec_from_file_location('dagfile', {str(path)!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "elapsed = time.perf_counter() - t\n"
        f"print(json.dumps({{'s': elapsed, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], f"{path.name} imports heavy modules at top level: {result['heavy']}"
    assert result["s"] < PARSE_BUDGET_S, f"{path.name} took {result['s']:.2f} s to parse"


def test_every_dag_has_owner_tags_retries_and_docs(dagbag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id}: no tags"
        assert dag.doc_md and len(dag.doc_md.strip()) > 40, f"{dag_id}: no doc_md"
        assert dag.owner and dag.owner != "airflow", f"{dag_id}: owner not set"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id}: no retries"
            assert task.owner == dag.owner or task.owner != "airflow", f"{dag_id}.{task.task_id}: owner"
            callbacks = task.on_failure_callback if isinstance(task.on_failure_callback, list) else []
            names = {getattr(c, "__name__", "") for c in callbacks or [task.on_failure_callback]}
            assert "task_failure_alert" in names, f"{dag_id}.{task.task_id}: no failure alert"


def test_the_chain_is_wired_by_assets(dagbag) -> None:
    """ingest -> train -> score -> evaluate: each DAG is scheduled on an asset the one before it updates."""
    from airflow.sdk import Asset

    def outlets(dag_id: str) -> set[str]:
        return {o.name for t in dagbag.dags[dag_id].tasks for o in t.outlets if isinstance(o, Asset)}

    def inlets(dag_id: str) -> set[str]:
        timetable = dagbag.dags[dag_id].timetable
        condition = getattr(timetable, "asset_condition", None)
        return {asset.name for _, asset in condition.iter_assets()} if condition is not None else set()

    assert inlets("marketing_train") & outlets("marketing_ingest")
    assert inlets("marketing_score") & outlets("marketing_train")
    assert inlets("marketing_evaluate") & outlets("marketing_ingest")


def test_in_spark_submit_mode_the_spark_steps_are_submit_operators_wired_the_same(dagbag) -> None:
    """``MSP_SPARK_SUBMIT=true`` (stack mode): the same graph, the Spark steps as ``MspSparkSubmitOperator``."""
    probe = (
        "import json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS)!r})\n"
        "out = {'errors': {str(k): str(v) for k, v in bag.import_errors.items()}, 'tasks': {}}\n"
        "for dag_id, dag in bag.dags.items():\n"
        "    for t in dag.tasks:\n"
        "        out['tasks'][f'{dag_id}.{t.task_id}'] = [type(t).__name__, sorted(t.upstream_task_ids),\n"
        "            sorted(o.name for o in t.outlets), t.retries, getattr(t, 'step', None)]\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "MSP_SPARK_SUBMIT": "true"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    submitted = {k: v for k, v in result["tasks"].items() if v[0] == "MspSparkSubmitOperator"}
    tables = ("customers", "products", "events", "orders", "campaign_log")
    expected = {f"marketing_ingest.{step}_{t}": step for step in ("ingest", "clean") for t in tables}
    expected |= {"marketing_train.build_features": "features", "marketing_train.build_training_set": "training_set"}
    expected |= {"marketing_score.build_features": "score_features"}
    assert {k: v[4] for k, v in submitted.items()} == expected
    for key, (_, upstream, outlets, retries, _) in result["tasks"].items():  # same graph as embedded mode
        dag_id, task_id = key.split(".", 1)
        task = dagbag.dags[dag_id].get_task(task_id)
        assert upstream == sorted(task.upstream_task_ids), key
        assert outlets == sorted(o.name for o in task.outlets), key
        assert retries == task.retries, key
