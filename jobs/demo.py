"""``msp demo``: the whole pipeline end to end on embedded defaults, stage by stage.

Each stage logs when it starts and what it produced; the summary at the end says where to look.
Stages: simulate, then marketing_ingest, marketing_train and marketing_score through Airflow, then
the closed loop: ``MSP_DEMO_NIGHTS`` nights (default 1, to stay within the demo's 10 minutes) of
answer (the simulator's respond), ingest and score, and marketing_evaluate once the last night's
attribution window has closed (:mod:`jobs.loop`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from jobs.settings import Settings

log = logging.getLogger(__name__)

DEMO_CUSTOMERS = 20_000
DEMO_PRODUCTS = 400
DEMO_DAYS = 60
#: the hyperparameter search budget of the demo's training (the nightly default is 60 s): the 10-minute rule
DEMO_TUNING_BUDGET_S = 15


@dataclass
class DemoReport:
    lines: list[str] = field(default_factory=list)

    def add(self, line: str = "") -> None:
        self.lines.append(line)


def _simulate(settings: Settings, report: DemoReport) -> None:
    from jobs.simulator.config import SimConfig
    from jobs.simulator.engine import simulate

    cfg = SimConfig(customers=DEMO_CUSTOMERS, products=DEMO_PRODUCTS, days=DEMO_DAYS)
    result = simulate(cfg, settings.landing, settings.truth, progress=True)
    dirt = pd.read_parquet(result.truth / "dirt.parquet")
    report.add(f"Shop simulated: {cfg.customers:,} customers, {cfg.products:,} products, {cfg.start}..{cfg.end}")
    report.add(f"  {'table':<13} {'format':<8} {'rows written':>13} {'clean rows':>11}")
    from jobs.simulator.config import FORMATS

    for table, rows in sorted(result.rows_written.items()):
        report.add(f"  {table:<13} {FORMATS[table]:<8} {rows:>13,} {result.clean_rows[table]:>11,}")
    report.add(f"  past campaigns: {result.campaigns} (campaign_log, with logged propensities)")
    report.add("  dirt injected (what cleaning must dedupe, impute or quarantine):")
    by_action = dirt.groupby(["action", "reason"]).size().sort_values(ascending=False)
    for (action, reason), count in by_action.head(12).items():
        report.add(f"    {action:<10} {reason:<34} {count:>6,}")
    if len(by_action) > 12:
        report.add(f"    ... {len(by_action) - 12} more reasons in {result.truth / 'dirt.parquet'}")
    report.add(f"  landing zone   {result.landing}/<table>/ds=YYYY-MM-DD/")
    report.add(f"  ground truth   {result.truth}/manifest.json, dirt.parquet, campaign_truth/ds=*/")
    report.add("")


def _ingest(settings: Settings, report: DemoReport) -> None:
    from jobs.airflow_local import dags_test, failed_tasks
    from jobs.pipeline.run import layer_counts, quarantine_reasons
    from jobs.quality.validate import docs_index
    from jobs.simulator.config import SimConfig
    from jobs.warehouse import Warehouse

    cfg = SimConfig(customers=DEMO_CUSTOMERS, products=DEMO_PRODUCTS, days=DEMO_DAYS)
    ds, since = cfg.end.isoformat(), cfg.start.isoformat()
    run = dags_test(settings, "marketing_ingest", ds, {"ds": ds, "since": since})
    if not run.ok:
        raise RuntimeError(
            f"marketing_ingest ended {run.state} (failed tasks: {failed_tasks(settings, run)}); log: {run.log_path}"
        )
    counts = layer_counts(settings, ds, since)
    manifest = json.loads((settings.truth / "manifest.json").read_text())
    report.add(f"marketing_ingest (Airflow, {since}..{ds}): {run.state}")
    report.add(f"  {'table':<13} {'bronze':>9} {'silver':>9} {'quarantine':>11} {'simulator clean':>16}")
    for table in counts["bronze"]:
        report.add(
            f"  {table:<13} {counts['bronze'][table]:>9,} {counts['silver'][table]:>9,} "
            f"{counts['quarantine'][table]:>11,} {manifest['clean_rows'][table]:>16,}"
        )
    report.add("  quarantine reasons (top 10):")
    flat = sorted(
        ((n, t, r) for t, c in quarantine_reasons(settings, ds, since).items() for r, n in c.items()),
        reverse=True,
    )
    for n, table, reason in flat[:10]:
        report.add(f"    {table:<13} {reason:<34} {n:>6,}")
    dq = Warehouse.from_settings(settings).query(
        f"SELECT severity, success, count(*) AS n FROM {settings.warehouse_schema}.data_quality "
        f"WHERE run_date = DATE '{ds}' GROUP BY ALL ORDER BY ALL"
    )
    checks = ", ".join(f"{r.n} {r.severity} {'passed' if r.success else 'failed'}" for r in dq.itertuples())
    report.add(f"  expectations: {checks}")
    report.add(f"  Data Docs      {docs_index(settings)}")
    report.add(f"  run log        {run.log_path}")
    report.add(
        f'  warehouse      .venv/bin/msp warehouse query "SELECT * FROM {settings.warehouse_schema}.data_quality"'
    )
    report.add("")


def _train(settings: Settings, report: DemoReport) -> None:
    import mlflow

    from jobs.airflow_local import dags_test, failed_tasks
    from jobs.simulator.config import SimConfig
    from jobs.training.train import KINDS, SERVED, configure_mlflow, model_name

    ds = SimConfig(customers=DEMO_CUSTOMERS, products=DEMO_PRODUCTS, days=DEMO_DAYS).end.isoformat()
    run = dags_test(settings, "marketing_train", ds, {"ds": ds})
    if not run.ok:
        raise RuntimeError(
            f"marketing_train ended {run.state} (failed tasks: {failed_tasks(settings, run)}); log: {run.log_path}"
        )
    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    report.add(f"marketing_train (Airflow, training date {ds}): {run.state}")
    report.add(
        f"  {'model':<20} {'version':>7} {'aliases':<20} {'revenue':<7} {'AUC':>6} {'ECE':>7} "
        f"{'profit DR [95% CI]':>22} {'over control':>12}"
    )
    for kind in KINDS:
        name = model_name(settings, kind)
        latest = max(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
        version = client.get_model_version(name, latest.version)
        m = client.get_run(version.run_id).data.metrics
        interval = f"{m['policy_profit_dr']:.2f} [{m['policy_profit_dr_lo']:.2f}, {m['policy_profit_dr_hi']:.2f}]"
        report.add(
            f"  {name:<20} {version.version:>7} {','.join(version.aliases) or '-':<20} "
            f"{version.tags.get('msp.revenue_mode', '-'):<7} {m['conv_auc']:>6.3f} {m['conv_ece']:>7.4f} "
            f"{interval:>22} {m['policy_profit_gain_dr']:>+12.2f}"
        )
        report.add(f"    promotion: {version.tags.get('msp.promotion_reason', 'not evaluated')}")
    served = model_name(settings, SERVED)
    champion = client.get_model_version_by_alias(served, "champion")
    report.add(
        f"  {served} v{champion.version} @champion serves {champion.tags.get('msp.source', '?')} "
        f"(scoring loads it): {champion.tags.get('msp.promotion_reason', '')}"
    )
    report.add("  profit DR: doubly robust estimate, on held-out campaign rows, of the profit per customer of the")
    report.add("  policy the nightly optimiser would run with the model (catalogue costs, budget, caps); over control:")
    report.add("  its gain over contacting nobody. revenue: direct (the family's revenue model) or hurdle")
    report.add("  (calibrated conversion x order value learned from every order x (1 - discount)).")
    report.add(f"  MLflow store   {settings.resolved_mlflow_tracking_uri} (experiment {settings.mlflow_experiment})")
    report.add(
        "  MLflow UI      make ui  (or: .venv/bin/mlflow ui --backend-store-uri "
        f"{settings.resolved_mlflow_tracking_uri} --host 127.0.0.1), then http://127.0.0.1:5000"
    )
    report.add(f"  run log        {run.log_path}")
    report.add("")


def _score(settings: Settings, report: DemoReport) -> None:
    from jobs.airflow_local import dags_test, failed_tasks
    from jobs.simulator.config import SimConfig
    from jobs.warehouse import Warehouse

    ds = SimConfig(customers=DEMO_CUSTOMERS, products=DEMO_PRODUCTS, days=DEMO_DAYS).end.isoformat()
    run = dags_test(settings, "marketing_score", ds, {"ds": ds})
    if not run.ok:
        raise RuntimeError(
            f"marketing_score ended {run.state} (failed tasks: {failed_tasks(settings, run)}); log: {run.log_path}"
        )
    schema = settings.warehouse_schema
    wh = Warehouse.from_settings(settings)
    mix = wh.query(
        f"SELECT strategy, customers, share, model_customers, explore_customers, holdout_customers, "
        f"expected_cost, expected_incremental_profit FROM {schema}.v_strategy_summary "
        f"WHERE run_date = DATE '{ds}' ORDER BY customers DESC"
    )
    model = wh.query(
        f"SELECT DISTINCT model_name, model_version FROM {schema}.strategy_assignments WHERE run_date = DATE '{ds}'"
    )
    report.add(
        f"marketing_score (Airflow, run date {ds}): {run.state}; "
        f"model {model.iloc[0, 0]} v{model.iloc[0, 1]} (@champion)"
    )
    report.add(
        f"  {'strategy':<22} {'customers':>9} {'share':>6} {'model':>6} {'explore':>7} {'holdout':>7} "
        f"{'cost':>9} {'incr. profit':>12}"
    )
    for r in mix.itertuples():
        report.add(
            f"  {r.strategy:<22} {r.customers:>9,} {r.share:>6.1%} {r.model_customers:>6,} {r.explore_customers:>7,} "
            f"{r.holdout_customers:>7,} {r.expected_cost:>9,.2f} {r.expected_incremental_profit:>12,.2f}"
        )
    fc = wh.query(
        f"SELECT strategy, sum(customers) AS customers, sum(expected_incremental_conversions) AS inc, "
        f"sum(expected_incremental_conversions_lo) AS lo, sum(expected_incremental_conversions_hi) AS hi, "
        f"sum(expected_incremental_revenue) AS rev, sum(expected_cost) AS cost "
        f"FROM {schema}.campaign_forecast WHERE run_date = DATE '{ds}' GROUP BY strategy ORDER BY strategy"
    )
    report.add("  forecast (campaign_forecast, summed over segments; intervals are per-segment bounds summed):")
    report.add(f"  {'strategy':<22} {'incr. conversions [95%]':>28} {'incr. revenue':>13} {'cost':>9}")
    for r in fc.itertuples():
        report.add(f"  {r.strategy:<22} {r.inc:>10.1f} [{r.lo:>6.1f}, {r.hi:>6.1f}] {r.rev:>13,.2f} {r.cost:>9,.2f}")
    report.add(f'  warehouse      .venv/bin/msp warehouse query "SELECT * FROM {schema}.v_strategy_summary"')
    report.add(f'                 .venv/bin/msp warehouse query "SELECT * FROM {schema}.v_latest_assignments LIMIT 10"')
    report.add(f"  lake           {settings.lake}/gold/assignments/ds={ds}/")
    report.add(f"  run log        {run.log_path}")
    report.add("")


def _forecast(settings: Settings, report: DemoReport) -> None:
    from jobs.simulator.config import SimConfig
    from jobs.warehouse import Warehouse

    ds = SimConfig(customers=DEMO_CUSTOMERS, products=DEMO_PRODUCTS, days=DEMO_DAYS).end.isoformat()
    _dag_runner(settings)("marketing_forecast", ds)
    schema = settings.warehouse_schema
    totals = Warehouse.from_settings(settings).query(
        f"SELECT category, sum(orders) AS orders, sum(revenue) AS revenue, sum(revenue_lower) AS lo, "
        f"sum(revenue_upper) AS hi, min(revenue_model) AS model FROM {schema}.v_sales_forecast_latest "
        f"GROUP BY category ORDER BY revenue DESC"
    )
    report.add(f"marketing_forecast (Airflow, origin {ds}): the next 28 days per category (sum of the daily figures):")
    report.add(f"  {'category':<16} {'orders':>8} {'revenue':>12}  {'daily 80% bounds summed':>27}  model")
    for r in totals.itertuples():
        bounds = f"[{r.lo:>11,.0f}, {r.hi:>11,.0f}]"
        report.add(f"  {r.category:<16} {r.orders:>8,.0f} {r.revenue:>12,.0f}  {bounds:>27}  {r.model}")
    report.add(f'  warehouse      .venv/bin/msp warehouse query "SELECT * FROM {schema}.v_sales_forecast_latest"')
    report.add("")


def _dag_runner(settings: Settings):
    from jobs.airflow_local import dags_test, failed_tasks

    def run(dag_id: str, ds: str) -> None:
        result = dags_test(settings, dag_id, ds, {"ds": ds})
        if not result.ok:
            raise RuntimeError(
                f"{dag_id} {ds} ended {result.state} (failed tasks: {failed_tasks(settings, result)}); "
                f"log: {result.log_path}"
            )

    return run


def _loop(settings: Settings, report: DemoReport) -> None:
    import math

    from jobs.loop import run_loop
    from jobs.simulator.config import SimConfig
    from jobs.warehouse import Warehouse

    first = SimConfig(customers=DEMO_CUSTOMERS, products=DEMO_PRODUCTS, days=DEMO_DAYS).end.isoformat()
    result = run_loop(settings, first, settings.demo_nights, _dag_runner(settings))
    schema = settings.warehouse_schema
    wh = Warehouse.from_settings(settings)
    nights = ", ".join(f"DATE '{d}'" for d in result.nights)
    effects = wh.query(
        f"SELECT run_date, strategy, segment, customers, holdout_customers, predicted_incremental_conversions, "
        f"predicted_incremental_conversions_lo, predicted_incremental_conversions_hi, "
        f"incremental_conversions, incremental_conversions_lo, incremental_conversions_hi, "
        f"realised_inside_predicted_interval FROM {schema}.strategy_effects WHERE run_date IN ({nights})"
    )
    pooled = effects[effects["segment"] == "all"]
    cells = effects[effects["segment"] != "all"]["realised_inside_predicted_interval"].dropna()
    report.add(
        f"closed loop: {len(result.nights)} night(s) ({', '.join(result.nights)}) answered by the "
        f"simulator, ingested, scored; marketing_evaluate on {result.evaluated_on}"
    )
    report.add("  per strategy, summed over the nights (realised: against the holdout the model would have given it):")
    report.add(
        f"  {'strategy':<22} {'customers':>9} {'holdout':>7} {'predicted [95% interval]':>30} "
        f"{'realised [95% interval]':>30}"
    )

    def summed(g: pd.DataFrame, column: str) -> str:
        """The nights' sum with a 95% interval, their standard errors combined as independent."""
        total = float(g[column].sum())
        se = math.sqrt(float((((g[f"{column}_hi"] - g[f"{column}_lo"]) / (2 * 1.959964)) ** 2).sum()))
        return f"{total:>10.1f} [{total - 1.96 * se:>7.1f}, {total + 1.96 * se:>7.1f}]"

    for strategy, g in pooled.groupby("strategy"):
        report.add(
            f"  {strategy:<22} {g['customers'].sum():>9,} {g['holdout_customers'].sum():>7,} "
            f"{summed(g, 'predicted_incremental_conversions')} {summed(g, 'incremental_conversions')}"
        )
    if len(cells):
        report.add(
            f"  (strategy, segment, night) cells whose realised effect lies inside the predicted 95% interval: "
            f"{int(cells.sum())} of {len(cells)} ({cells.mean():.0%})"
        )
    metrics = wh.query(
        f"SELECT run_date, metric, value FROM {schema}.model_metrics WHERE source = 'evaluate' "
        f"AND run_date IN ({nights})"
    )
    realised = metrics.pivot(index="run_date", columns="metric", values="value")
    realised.index = pd.to_datetime(realised.index).strftime("%Y-%m-%d")
    report.add("  the policy's incremental profit (true values from the simulator; realised = holdout estimate):")
    report.add(
        f"  {'night':<11} {'policy (true)':>13} {'oracle (true)':>13} {'ratio':>6} {'realised [95% interval]':>32}"
    )
    for ds in result.nights:
        t = result.truth[ds]
        r = realised.loc[ds] if ds in realised.index else None
        measured = (
            f"{r['policy_incremental_profit']:>10.1f} [{r['policy_incremental_profit_lo']:>8.1f}, "
            f"{r['policy_incremental_profit_hi']:>8.1f}]"
            if r is not None
            else "-"
        )
        report.add(f"  {ds:<11} {t['policy']:>13.1f} {t['oracle']:>13.1f} {t['ratio_to_oracle']:>6.2f} {measured:>32}")
    report.add(f'  warehouse      .venv/bin/msp warehouse query "SELECT * FROM {schema}.v_strategy_effects"')
    report.add(f'                 .venv/bin/msp warehouse query "SELECT * FROM {schema}.feature_drift"')
    report.add(f"  MLflow         experiment {settings.mlflow_experiment}-evaluation (one run per night)")
    report.add("")


def _where_to_look(settings: Settings, report: DemoReport) -> None:
    report.add("Where to look:")
    report.add(f"  lake           {settings.lake}/{{landing,bronze,silver,quarantine,gold}}/<table>/ds=YYYY-MM-DD/")
    report.add(
        "  documentation  docs/ARCHITECTURE.md, docs/SIMULATOR.md, docs/INGESTION.md, docs/MODELS.md, docs/SCORING.md"
    )
    report.add("  UIs            make ui: Airflow http://127.0.0.1:8080 (runs), MLflow http://127.0.0.1:5000 (models)")
    report.add("  settings       .venv/bin/msp config")
    report.add(
        "  one step       .venv/bin/msp ingest events --ds 2026-10-30; .venv/bin/msp clean events --ds 2026-10-30"
    )
    report.add("  train a step   .venv/bin/msp features build --ds 2026-10-30")
    report.add("                 .venv/bin/msp train dataset --ds 2026-10-30")
    report.add("                 .venv/bin/msp train model xgboost --ds 2026-10-30   (keras, fusion)")
    report.add("                 .venv/bin/msp train promote --ds 2026-10-30")
    report.add("  close the loop .venv/bin/msp simulate respond --assignments FILE --date YYYY-MM-DD")
    report.add("                 .venv/bin/msp evaluate --ds YYYY-MM-DD")


STAGES: list[tuple[str, Callable[[Settings, DemoReport], None]]] = [
    ("simulate the shop (landing zone + ground truth)", _simulate),
    ("marketing_ingest through Airflow: landing -> bronze -> silver + quarantine, GX gate", _ingest),
    ("marketing_train through Airflow: features, XGBoost, Keras and fusion uplift models, MLflow registry", _train),
    ("marketing_score through Airflow: champion predictions, knapsack, recommendations, warehouse", _score),
    ("marketing_forecast through Airflow: 28 days of orders and revenue per category (ETS)", _forecast),
    ("closed loop: the nights answered by the simulator, ingested and scored, then marketing_evaluate", _loop),
]


def run_demo(settings: Settings) -> DemoReport:
    """Run every stage in order; a failing stage stops the demo with its error."""
    report = DemoReport()
    t0 = time.perf_counter()
    seconds: list[tuple[str, float]] = []
    for i, (name, stage) in enumerate(STAGES, 1):
        log.info("[stage %d/%d] %s", i, len(STAGES), name)
        t = time.perf_counter()
        stage(settings, report)
        seconds.append((name.split(":")[0], time.perf_counter() - t))
        log.info("[stage %d/%d] done in %.1f s", i, len(STAGES), seconds[-1][1])
    _where_to_look(settings, report)
    report.add("")
    report.add("Stage times:")
    for name, took in seconds:
        report.add(f"  {name:<34} {took:>7.1f} s")
    report.add(f"Demo finished in {time.perf_counter() - t0:.0f} s.")
    return report
