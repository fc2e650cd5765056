"""``msp train``: the nightly training steps one by one (the DAG ``marketing_train`` runs the same)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

train_app = typer.Typer(
    help="Training set, XGBoost / Keras uplift models in MLflow, champion/challenger promotion; "
    "or `msp train --dataset NAME` for an imported data set.",
    invoke_without_command=True,
)
DsOpt = Annotated[str, typer.Option("--ds", help="Training date YYYY-MM-DD (campaign outcomes up to it).")]


def _run(fn, *args):
    from jobs.pipeline.lake import PipelineError

    try:
        return fn(*args)
    except (PipelineError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@train_app.callback()
def train_callback(
    ctx: typer.Context,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Train on an imported data set (msp import campaign-log).")
    ] = None,
    ds: Annotated[str | None, typer.Option("--ds", help="With --dataset: the run date (default today).")] = None,
    tune: Annotated[
        bool | None, typer.Option("--tune/--no-tune", help="With --dataset: hyperparameter search.")
    ] = None,
) -> None:
    """Without a sub-command and with --dataset: fit, register and gate the data set's models."""
    if ctx.invoked_subcommand is not None:
        if dataset is not None:
            typer.echo("error: --dataset trains an imported data set; give it without a sub-command", err=True)
            raise typer.Exit(2)
        return
    if dataset is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    from jobs.cli import run_dataset_step
    from jobs.datasets.tasks import train_task

    typer.echo(json.dumps(run_dataset_step(train_task, dataset, ds, tune), indent=2, default=str))


@train_app.command("dataset")
def dataset_command(ds: DsOpt) -> None:
    """Build gold/training_set/ds=DS: campaign outcomes joined to the features of their send date."""
    from jobs.settings import get_settings
    from jobs.training.tasks import training_set_step

    counts = _run(training_set_step, get_settings(), ds)
    typer.echo(
        f"training set {ds}: {counts['train']:,} fit rows, {counts['test']:,} held-out rows; "
        f"order set: {counts['orders']:,} orders"
    )


@train_app.command("model")
def model_command(
    kind: Annotated[str, typer.Argument(help="xgboost, keras, or fusion (blends their @challenger versions)")],
    ds: DsOpt,
    params: Annotated[str, typer.Option("--params", help="JSON object of parameter overrides.")] = "",
    tune: Annotated[bool | None, typer.Option("--tune/--no-tune", help="Hyperparameter search (XGBoost).")] = None,
) -> None:
    """Fit, evaluate, log to MLflow, register a version and point @challenger at it."""
    from jobs.settings import get_settings
    from jobs.training.tasks import parse_params
    from jobs.training.train import train, train_fusion

    if kind not in (families := get_settings().model_families):
        typer.echo(f"error: {kind} is not in MSP_MODEL_FAMILIES={families}; the gate would ignore it", err=True)
        raise typer.Exit(2)
    if kind == "fusion":
        result = _run(lambda: train_fusion(get_settings(), ds))
    else:
        result = _run(lambda: train(get_settings(), kind, ds, parse_params(params), tune))
    typer.echo(json.dumps(result, indent=2, default=str))


@train_app.command("promote")
def promote_command(ds: DsOpt) -> None:
    """Compare @challenger with @champion on the held-out rows of DS; promote when it wins; choose what serves."""
    from jobs.settings import get_settings
    from jobs.training.registry import evaluate_and_promote

    for kind, record in _run(evaluate_and_promote, get_settings(), ds).items():
        typer.echo(f"{kind:8} {record['model_name']}: {record['reason']}")


@train_app.command("aliases")
def aliases_command() -> None:
    """Print the champion and challenger version of every registered model."""
    from jobs.settings import get_settings
    from jobs.training.registry import aliases

    for name, values in aliases(get_settings()).items():
        typer.echo(f"{name:24} champion={values['champion']}  challenger={values['challenger']}")
