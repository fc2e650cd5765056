"""
### marketing_dataset

An imported data set (a randomised campaign export, docs/DATASETS.md) through the platform, on demand.

1. **import_export** (when the `file` or the `mapping` param is given): `msp import campaign-log
   [FILE] --mapping MAPPING` into `<lake>/datasets/<dataset>/landing` (rows checked against the
   mapping; a broken row fails the run naming file, line and rule, or is quarantined with its reason
   when the mapping says `on_bad_rows: quarantine`; without `file`, the mapping's `source`, a data set
   shipped inside a package; a rerun replaces what the import wrote).
2. **train**: the XGBoost T-learners (cross-validated search within `MSP_TUNING_BUDGET_S`) and the
   Keras network on the data set's own features; each an MLflow run and a version of
   `<prefix>_ds_<dataset>`; the better on the held-out part gets `@challenger`, and `@champion`
   when there is none or it beats the champion on the same rows.
3. **score**: the held-out part (or `score_file`, customers with the same features) priced by the
   champion and the mapping's economics -> `marketing.dataset_assignments` and
   `marketing.dataset_forecast` (the run date replaced).
4. **evaluate**: the champion's held-out Qini, uplift@k, policy value (IPS / SNIPS / DR with
   intervals) against each single strategy, IRR and NIR -> `marketing.model_metrics`
   (`source = 'dataset:<name>'`).

Not scheduled: trigger it with the data set's name. **Params**: `dataset` (required), `ds` (run date,
default the logical date), `file` and `mapping` (import first), `score_file`, `tune`.
Code: `jobs/datasets/`, `jobs/imports/`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

from jobs.dag_defaults import dag_default_args, date_param

ASSIGNMENTS = Asset(
    name="msp.warehouse.dataset_assignments", uri="msp://warehouse/dataset_assignments", group="msp-warehouse"
)

default_args = dag_default_args(
    "ml-eng", retries=1, retry_delay=timedelta(minutes=2), execution_timeout=timedelta(hours=2)
)


@dag(
    dag_id="marketing_dataset",
    schedule=None,
    start_date=datetime(2026, 9, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["msp", "dataset", "mlflow", "xgboost", "keras", "warehouse"],
    doc_md=__doc__,
    params={
        "dataset": Param("hillstrom", type="string", pattern=r"^[a-z_][a-z0-9_]*$", description="Data set name."),
        "ds": date_param("Run date of the scoring and the metrics (YYYY-MM-DD); default the logical date."),
        "file": Param(
            None, type=["null", "string"], description="An export to import first (or: the mapping's source)."
        ),
        "mapping": Param(None, type=["null", "string"], description="Its mapping (file or shipped name)."),
        "score_file": Param(None, type=["null", "string"], description="Customers to score (default: held out)."),
        "tune": Param(None, type=["null", "boolean"], description="Hyperparameter search: null = settings."),
    },
)
def marketing_dataset() -> None:
    @task
    def resolve_date(**context) -> str:
        """Run date from params, else the logical date, else today."""
        from jobs.pipeline.lake import check_ds
        from jobs.pipeline.tasks import partition_date

        return check_ds(partition_date(context))

    @task
    def import_export(**context) -> dict:
        """The export into the data set's landing root, when the run names one."""
        from jobs.datasets.tasks import fail_on_dataset_errors, import_task

        params = context["params"]
        if not params.get("file") and not params.get("mapping"):
            return {"imported": False}
        mapping = params.get("mapping") or params["dataset"]
        return fail_on_dataset_errors(import_task, params["file"], mapping, params["dataset"])

    @task
    def train(run_date: str, imported: dict, **context) -> dict:
        """Fit the families, register them, gate @challenger -> @champion."""
        from jobs.datasets.tasks import fail_on_dataset_errors, train_task

        params = context["params"]
        return fail_on_dataset_errors(train_task, params["dataset"], run_date, params.get("tune"))

    @task(outlets=[ASSIGNMENTS])
    def score(run_date: str, trained: dict, **context) -> dict:
        """The champion's assignments and forecast into the warehouse."""
        from jobs.datasets.tasks import fail_on_dataset_errors, score_task

        params = context["params"]
        return fail_on_dataset_errors(score_task, params["dataset"], run_date, params.get("score_file"))

    @task
    def evaluate(run_date: str, scored: dict, **context) -> dict:
        """The champion's held-out figures into model_metrics."""
        from jobs.datasets.tasks import evaluate_task, fail_on_dataset_errors

        params = context["params"]
        return fail_on_dataset_errors(evaluate_task, params["dataset"], run_date)

    run_date = resolve_date()
    evaluate(run_date, score(run_date, train(run_date, import_export())))


marketing_dataset()
