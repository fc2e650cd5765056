"""
### marketing_train

Nightly retraining of the uplift models, also triggered when every silver table was refreshed.

1. **build_features**: point-in-time features (`gold/features/ds=…`) for every campaign send
   date up to `ds` and for `ds` itself (the scoring date): for a date t only data before t.
2. **build_training_set**: campaign outcomes joined to the features of their send date, split
   into fit and held-out rows by a stable hash (`gold/training_set/ds=…`), and every order with
   the features before it and the campaign it is attributed to (`gold/order_set/ds=…`).
3. **train_xgboost** and **train_keras** in parallel: the XGBoost T-learner (tuned by a
   cross-validated search within `MSP_TUNING_BUDGET_S`, each trial an MLflow child run) and the
   Keras multi-head network; each fits the order-value model, calibrates and shrinks its effects on
   the held-out rows, keeps the better of its direct and hurdle revenue (off-policy profit), logs
   metrics, plots, the data profile and lineage to MLflow, registers a version and points
   `@challenger` at it.
4. **train_fusion**: a blend of the two challengers' effects, registered as a third family.
   A family left out of `MSP_MODEL_FAMILIES` (e.g. `["xgboost"]`) is skipped, and so is the fusion.
5. **evaluate_and_promote**: each challenger becomes `@champion` only if the held-out profit
   (doubly robust) of the policy it induces beats the champion's by `MSP_PROMOTION_MARGIN`; the
   first version is promoted; then the best family champion is copied into the served model
   `msp_uplift` when it beats what serves. Decisions and reasons are tagged on versions and runs.

**Params**: `ds` (default: the `ds` that the triggering silver asset events carry, else the logical
date, else today), `xgb_params` / `keras_params` (JSON objects overriding model parameters), `tune`
(null: settings decide; true/false). With `MSP_SPARK_SUBMIT=true` (stack mode) the two feature steps
are `SparkSubmitOperator`s on the connection's master (docs/DEPLOYMENT.md).
Code: `jobs/features/`, `jobs/training/`, `jobs/models/`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

from jobs.dag_defaults import dag_default_args, date_param, schedule, spark_step

SILVER_TABLES = ("customers", "products", "events", "orders", "campaign_log")
SILVER = [Asset(name=f"msp.silver.{t}", uri=f"msp://lake/silver/{t}", group="msp-silver") for t in SILVER_TABLES]
FEATURES = Asset(name="msp.gold.features", uri="msp://lake/gold/features", group="msp-gold")
MODELS = {
    kind: Asset(name=f"msp.model.{kind}", uri=f"msp://mlflow/models/{kind}", group="msp-models")
    for kind in ("xgboost", "keras", "fusion")
}
RUN_DATE = "{{ ti.xcom_pull(task_ids='resolve_date') }}"
CHAMPION = Asset(name="msp.model.champion", uri="msp://mlflow/models/champion", group="msp-models")

default_args = dag_default_args(
    "ml-eng", retries=1, retry_delay=timedelta(minutes=2), execution_timeout=timedelta(hours=3)
)

all_silver = SILVER[0]
for _asset in SILVER[1:]:
    all_silver = all_silver & _asset


@dag(
    dag_id="marketing_train",
    schedule=schedule("0 2 * * *", all_silver),
    start_date=datetime(2026, 9, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["msp", "train", "mlflow", "xgboost", "keras"],
    doc_md=__doc__,
    params={
        "ds": date_param("Training date (YYYY-MM-DD)."),
        "xgb_params": Param({}, type=["object", "string"], description="XGBoost parameter overrides (JSON)."),
        "keras_params": Param({}, type=["object", "string"], description="Keras parameter overrides (JSON)."),
        "tune": Param(None, type=["null", "boolean"], description="Hyperparameter search: null = settings."),
    },
)
def marketing_train() -> None:
    @task
    def resolve_date(**context) -> str:
        """Training date: params, else the triggering silver events' ds, else the logical date, else today."""
        from jobs.pipeline.lake import check_ds
        from jobs.pipeline.tasks import partition_date

        return check_ds(partition_date(context))

    @task(outlets=[FEATURES])
    def build_features(run_date: str, **context) -> dict:
        """silver -> gold/features for the campaign dates and ds (point in time)."""
        from jobs.pipeline.tasks import stamp_outlets
        from jobs.training.tasks import build_features_task

        stamp_outlets(context, run_date)
        return build_features_task(run_date)

    @task
    def build_training_set(run_date: str) -> dict:
        """campaign outcomes x features of their send date -> gold/training_set/ds=…"""
        from jobs.training.tasks import build_training_set_task

        return build_training_set_task(run_date)

    @task(outlets=[MODELS["xgboost"]])
    def train_xgboost(run_date: str, **context) -> dict:
        """XGBoost T-learner: tune, fit, evaluate, register @challenger."""
        from jobs.pipeline.tasks import stamp_outlets
        from jobs.training.tasks import train_task

        stamp_outlets(context, run_date)
        params = context["params"]
        return train_task("xgboost", run_date, params.get("xgb_params"), params.get("tune"))

    @task(outlets=[MODELS["keras"]])
    def train_keras(run_date: str, **context) -> dict:
        """Keras multi-head network: fit, evaluate, register @challenger."""
        from jobs.pipeline.tasks import stamp_outlets
        from jobs.training.tasks import train_task

        stamp_outlets(context, run_date)
        params = context["params"]
        return train_task("keras", run_date, params.get("keras_params"), False)

    @task(outlets=[MODELS["fusion"]])
    def train_fusion(run_date: str, **context) -> dict:
        """Blend of the XGBoost and Keras challengers' effects: evaluate, register @challenger."""
        from jobs.pipeline.tasks import stamp_outlets
        from jobs.training.tasks import train_task

        stamp_outlets(context, run_date)
        return train_task("fusion", run_date)

    # runs when the families left out by MSP_MODEL_FAMILIES were skipped, not when one failed
    @task(outlets=[CHAMPION], trigger_rule="none_failed")
    def evaluate_and_promote(run_date: str, **context) -> dict:
        """Challenger vs champion on the same held-out rows; move @champion when the challenger wins."""
        from jobs.pipeline.tasks import stamp_outlets
        from jobs.training.tasks import promote_task

        stamp_outlets(context, run_date)  # marketing_score scores this date
        return promote_task(run_date)

    run_date = resolve_date()
    # in spark-submit mode (stack) the two Spark steps are SparkSubmitOperators
    features = spark_step(
        lambda: build_features(run_date), task_id="build_features", step="features", ds=RUN_DATE, outlets=[FEATURES]
    )
    training_set = spark_step(
        lambda: build_training_set(run_date), task_id="build_training_set", step="training_set", ds=RUN_DATE
    )
    run_date >> [features, training_set]
    features >> training_set
    families = [train_xgboost(run_date), train_keras(run_date)]
    promote = evaluate_and_promote(run_date)
    training_set >> families >> train_fusion(run_date) >> promote
    families >> promote


marketing_train()
