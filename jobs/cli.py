"""The ``msp`` command line: one typed sub-command per lifecycle stage."""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from jobs.features.cli import features_app
from jobs.forecasting.cli import forecast_app
from jobs.imports.cli import import_app
from jobs.logging_setup import configure_logging
from jobs.settings import get_settings
from jobs.sources.cli import pull_app
from jobs.training.cli import train_app

app = typer.Typer(
    name="msp",
    help="Marketing Strategy Platform: simulate, ingest, train, score and evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
simulate_app = typer.Typer(
    help="Generate a deterministic shop into the landing zone (and its ground truth), or answer assignments.",
    invoke_without_command=True,
)
app.add_typer(simulate_app, name="simulate")
app.add_typer(import_app, name="import")
app.add_typer(pull_app, name="pull")
app.add_typer(features_app, name="features")
app.add_typer(train_app, name="train")
app.add_typer(forecast_app, name="forecast")
stack_app = typer.Typer(
    help="Stack mode: Airflow, MLflow and Spark standalone as services on loopback (no Docker).",
    no_args_is_help=True,
)
app.add_typer(stack_app, name="stack")
warehouse_app = typer.Typer(help="The warehouse (DuckDB or PostgreSQL): migrations and queries.")
app.add_typer(warehouse_app, name="warehouse")
log = logging.getLogger("jobs.cli")


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: invalid settings: {problems}", err=True)
        raise typer.Exit(2) from None
    configure_logging("DEBUG" if verbose else settings.log_level)


@app.command("config")
def config_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of aligned text.")] = False,
) -> None:
    """Print the effective settings (environment over embedded defaults), secrets masked."""
    values = get_settings().masked()
    if as_json:
        typer.echo(json.dumps(values, indent=2, default=str))
        return
    width = max(len(k) for k in values)
    for key, value in values.items():
        typer.echo(f"{key.ljust(width)}  {value}")


def _parse_overrides(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise typer.BadParameter(f"{item!r} is not KIND=RATE (e.g. malformed=0.01)", param_hint="--dirt") from None
    return out


@simulate_app.callback()
def simulate_command(
    ctx: typer.Context,
    seed: Annotated[int, typer.Option(help="Random seed: equal options give byte-identical output.")] = 42,
    customers: Annotated[int, typer.Option(min=10, help="Number of customers.")] = 20_000,
    products: Annotated[int, typer.Option(min=16, help="Number of products.")] = 400,
    days: Annotated[int, typer.Option(min=1, help="Number of simulated days.")] = 60,
    start: Annotated[str, typer.Option(help="First simulated day (YYYY-MM-DD).")] = "2026-09-01",
    campaign_every: Annotated[int, typer.Option(min=1, help="Days between past campaigns.")] = 14,
    attribution_days: Annotated[int, typer.Option(min=1, max=60, help="Attribution window in days.")] = 7,
    dirt_scale: Annotated[float, typer.Option(min=0.0, help="Multiply every dirt rate (0: clean data).")] = 1.0,
    dirt: Annotated[list[str] | None, typer.Option(help="Override one dirt rate, KIND=RATE (repeatable).")] = None,
    shift_day: Annotated[int, typer.Option(min=0, help="Inject a population shift from this day (0: none).")] = 0,
    shift_share: Annotated[
        float, typer.Option(min=0.0, max=0.99, help="Size of the shift's signup wave, as a share of customers.")
    ] = 0.0,
) -> None:
    """Simulate a shop: landing files partitioned by ds, campaign history, dirt, and the truth."""
    if ctx.invoked_subcommand is not None:
        return
    from jobs.simulator.config import DirtRates, SimConfig
    from jobs.simulator.engine import simulate

    try:
        rates = DirtRates().with_overrides(_parse_overrides(dirt or [])).scaled(dirt_scale)
        cfg = SimConfig(
            seed=seed,
            customers=customers,
            products=products,
            days=days,
            start=date.fromisoformat(start),
            campaign_every=campaign_every,
            attribution_days=attribution_days,
            shift_day=shift_day,
            shift_share=shift_share,
            dirt=rates,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    settings = get_settings()
    log.info("simulating %d customers x %d days (seed %d) into %s", customers, days, seed, settings.landing)
    result = simulate(cfg, settings.landing, settings.truth, progress=True)
    typer.echo(f"simulated {cfg.start}..{cfg.end} in {result.seconds:.1f} s ({result.total_rows:,} rows)")
    typer.echo(f"  landing zone: {result.landing}")
    typer.echo(f"  ground truth: {result.truth}  (manifest.json, dirt.parquet, campaign_truth/)")
    typer.echo(f"  {'table':<13} {'rows written':>13} {'clean rows':>11}")
    for table, rows in sorted(result.rows_written.items()):
        typer.echo(f"  {table:<13} {rows:>13,} {result.clean_rows.get(table, 0):>11,}")
    typer.echo(f"  campaigns: {result.campaigns}; dirt injected by kind: {result.dirt_by_kind}")


@simulate_app.command("respond")
def respond_command(
    assignments: Annotated[Path, typer.Option(help="Parquet or CSV of customer_id, strategy, propensity.")],
    run_date: Annotated[str, typer.Option("--date", help="Date the assignments were made (YYYY-MM-DD).")],
    dirt_scale: Annotated[float, typer.Option(min=0.0, help="Dirt in the generated files (default clean).")] = 0.0,
) -> None:
    """Draw outcomes for the platform's assignments and append them to the landing zone."""
    from jobs.simulator.respond import AssignmentError, respond

    settings = get_settings()
    try:
        result = respond(assignments, date.fromisoformat(run_date), settings.landing, settings.truth, dirt_scale)
    except (AssignmentError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"answered {result.assignments:,} assignments of {result.run_date}: {result.converted:,} converted, "
        f"revenue {result.revenue:,.2f}; wrote {len(result.files)} files under {settings.landing}"
    )


def _dates(ds: str, since: str | None) -> tuple[str, str | None]:
    from jobs.pipeline.lake import PipelineError, ds_range

    try:
        dates = ds_range(ds, since)
    except PipelineError as exc:
        raise typer.BadParameter(str(exc)) from None
    return dates[-1], dates[0]


TABLE_HELP = "Source table: customers, products, events, orders or campaign_log."


TableArg = Annotated[str, typer.Argument(help=TABLE_HELP)]
DsOpt = Annotated[str, typer.Option(help="Partition date (YYYY-MM-DD).")]
SinceOpt = Annotated[str | None, typer.Option(help="First date of a range (default: ds).")]


def _run_step(step: str, table: str, ds: str, since: str | None) -> None:
    """Run one pipeline step; a data error prints its message and exits 2."""
    from jobs.contracts import SOURCES
    from jobs.pipeline.lake import PipelineError
    from jobs.pipeline.run import clean_step, ingest_step
    from jobs.quality.validate import QualityError

    if table not in SOURCES:
        raise typer.BadParameter(f"unknown table {table!r}; one of {sorted(SOURCES)}")
    ds, since = _dates(ds, since)
    fn = ingest_step if step == "ingest" else clean_step
    try:
        typer.echo(json.dumps(fn(get_settings(), table, ds, since), indent=2, default=str))
    except (PipelineError, QualityError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("ingest")
def ingest_command(table: TableArg, ds: DsOpt, since: SinceOpt = None) -> None:
    """landing -> bronze for one table (Spark)."""
    _run_step("ingest", table, ds, since)


@app.command("clean")
def clean_command(table: TableArg, ds: DsOpt, since: SinceOpt = None) -> None:
    """bronze -> silver + quarantine for one table, gated by its Great Expectations suite."""
    _run_step("clean", table, ds, since)


DatasetOpt = Annotated[
    str | None,
    typer.Option("--dataset", help="An imported data set (msp import campaign-log) instead of the shop."),
]
RunDsOpt = Annotated[str | None, typer.Option("--ds", help="Run date (YYYY-MM-DD); with --dataset default today.")]


def _shop_date(ds: str | None) -> str:
    if ds is None:
        typer.echo("error: --ds is required (or --dataset NAME for an imported data set)", err=True)
        raise typer.Exit(2)
    return ds


def run_dataset_step(fn, *args) -> dict:
    """A data-set step for the CLI: its errors (data set, mapping, model) as one line and exit code 2."""
    from jobs.imports.campaign_log import CampaignImportError

    try:
        return fn(*args)
    except (CampaignImportError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("score")
def score_command(
    ds: RunDsOpt = None,
    publish: Annotated[bool, typer.Option("--publish/--no-publish", help="Also write the warehouse.")] = True,
    dataset: DatasetOpt = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="With --dataset: customers to score (default: the held-out part).")
    ] = None,
) -> None:
    """Score the run date with the @champion (gold/assignments) and publish it to the warehouse.

    With --dataset: score that data set's customers with its champion into marketing.dataset_assignments.
    """
    if dataset is not None:
        from jobs.datasets.tasks import score_task as dataset_score

        typer.echo(json.dumps(run_dataset_step(dataset_score, dataset, ds, str(file) if file else None), indent=2))
        return
    from jobs.scoring.tasks import publish_task, score_task

    ds = _shop_date(ds)
    result = score_task(ds)
    typer.echo(json.dumps({k: result[k] for k in ("run_date", "customers", "mix", "optimiser")}, indent=2, default=str))
    if publish:
        typer.echo(json.dumps(publish_task(ds)))


@app.command("evaluate")
def evaluate_command(ds: RunDsOpt = None, dataset: DatasetOpt = None) -> None:
    """Realised effects of every run whose attribution window closed by DS (warehouse + MLflow).

    With --dataset: the data set's champion on its held-out part (Qini, uplift@k, policy value, IRR, NIR).
    """
    if dataset is not None:
        from jobs.datasets.tasks import evaluate_task as dataset_evaluate

        typer.echo(json.dumps(run_dataset_step(dataset_evaluate, dataset, ds), indent=2, default=str))
        return
    from jobs.evaluation.tasks import evaluate_task

    typer.echo(json.dumps(evaluate_task(_shop_date(ds)), indent=2, default=str))


@warehouse_app.command("init")
def warehouse_init_command() -> None:
    """Apply the versioned migrations; on PostgreSQL also grant the read-only role bi_reader."""
    from jobs.warehouse import Warehouse

    wh = Warehouse.from_settings(get_settings())
    applied = wh.migrate()
    typer.echo(f"{wh.kind} warehouse, schema {wh.schema}: " + (f"applied {applied}" if applied else "up to date"))
    typer.echo(f"readers: {wh.grant_readers()}")


@warehouse_app.command("query")
def warehouse_query_command(sql: Annotated[str, typer.Argument(help="A SELECT statement.")]) -> None:
    """Run a query against the warehouse and print the result."""
    from jobs.warehouse import Warehouse

    typer.echo(Warehouse.from_settings(get_settings()).query(sql).to_string(index=False))


@app.command("ui")
def ui_command(
    airflow_port: Annotated[int, typer.Option(help="Port of the Airflow UI (loopback).")] = 8080,
    mlflow_port: Annotated[int, typer.Option(help="Port of the MLflow UI (loopback).")] = 5000,
) -> None:
    """Serve the Airflow UI and the MLflow UI on 127.0.0.1 until Ctrl-C."""
    from jobs.ui import password_file, start, stop, wait_healthy

    settings = get_settings()
    procs = start(settings, airflow_port, mlflow_port)
    try:
        healthy = wait_healthy(procs)
        for p in procs:
            state = "up" if healthy[p.name] else f"NOT healthy (see {p.log_path})"
            typer.echo(f"{p.name:8} {p.url}  {state}")
        typer.echo(f"Airflow login: admin, password in {password_file(settings)}")
        if not all(healthy.values()):
            raise typer.Exit(1)
        typer.echo("Ctrl-C stops both.")
        while all(p.process.poll() is None for p in procs):
            time.sleep(1)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        typer.echo("stopping")
    finally:
        stop(procs)


@app.command(
    "airflow",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
)
def airflow_command(ctx: typer.Context) -> None:
    """The Airflow CLI on the embedded home (var/airflow, SQLite, this repository's DAGs), e.g.
    ``msp airflow dags list-runs marketing_evaluate`` or ``msp airflow backfill create ...`` (its runs are executed
    by the scheduler of ``make ui``; on SQLite create it before starting that, docs/EVALUATION.md)."""
    import subprocess

    from jobs.airflow_local import airflow_bin, airflow_env, ensure_db

    settings = get_settings()
    ensure_db(settings)
    raise typer.Exit(subprocess.call([airflow_bin(), *ctx.args], env=airflow_env(settings)))


@app.command("demo")
def demo_command() -> None:
    """Run the whole pipeline end to end on embedded defaults and say where to look."""
    from jobs.demo import DEMO_TUNING_BUDGET_S, run_demo

    # the demo's Airflow runs inherit these; a value set by the user wins. A 20,000-customer shop's Spark
    # jobs live seconds: JVMs tuned for that (jobs.spark.SHORT_LIVED_JVM)
    os.environ.setdefault("MSP_TUNING_BUDGET_S", str(DEMO_TUNING_BUDGET_S))
    os.environ.setdefault("MSP_SPARK_SHORT_LIVED_JVM", "true")
    get_settings.cache_clear()
    report = run_demo(get_settings())
    typer.echo("\n".join(report.lines))


def main() -> None:
    from jobs.threads import use_thread_env

    use_thread_env()  # before any command imports XGBoost (libgomp reads it once)
    app()


if __name__ == "__main__":
    main()


def _print_stack(report: dict) -> None:
    for name, entry in report.items():
        state = "healthy" if entry["healthy"] else "NOT healthy"
        pid = entry["pid"] or "-"
        typer.echo(
            f"{name:22} {state:12} pid {pid!s:>7}  {entry['detail']}" + (f"  {entry['url']}" if entry["url"] else "")
        )


@stack_app.command("up")
def stack_up_command(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every component to be healthy.")] = 300,
) -> None:
    """Create the databases, migrate Airflow, start every component and wait until all are healthy."""
    from jobs.stack import StackError, credentials, stack_dir, up

    settings = get_settings()
    try:
        report = up(settings, timeout)
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    _print_stack(report)
    creds = credentials(settings)
    where = "MSP_STACK_ADMIN_PASSWORD" if settings.stack_admin_password else stack_dir(settings) / "credentials.json"
    typer.echo(f"login (Airflow and MLflow UIs): {creds.user}, password in {where}")
    typer.echo(f"logs: {stack_dir(settings) / 'logs'}; stop with: make stack-down")


@stack_app.command("down")
def stack_down_command() -> None:
    """Stop every running component of the stack."""
    from jobs.stack import down

    stopped = down(get_settings())
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@stack_app.command("status")
def stack_status_command() -> None:
    """Each component's process and health; exits 1 when any is not healthy."""
    from jobs.stack import health

    report = health(get_settings())
    _print_stack(report)
    if not all(e["healthy"] for e in report.values()):
        raise typer.Exit(1)
