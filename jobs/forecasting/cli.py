"""``msp forecast``: the sales forecast of a run date (``msp forecast sales --ds D``)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from jobs.settings import get_settings

forecast_app = typer.Typer(help="Forecasts: daily orders and revenue per category (silver -> warehouse).")


@forecast_app.command("sales")
def sales_command(
    ds: Annotated[str, typer.Option(help="Forecast origin (YYYY-MM-DD): orders before it are the history.")],
    horizon: Annotated[int, typer.Option(min=1, max=366, help="Days to forecast from --ds on.")] = 28,
    history_days: Annotated[int, typer.Option(min=7, help="Days of history before --ds.")] = 364,
    level: Annotated[float, typer.Option(min=0.5, max=0.99, help="Central prediction interval level.")] = 0.8,
    publish: Annotated[bool, typer.Option("--publish/--no-publish", help="Write marketing.sales_forecast.")] = True,
) -> None:
    """Forecast orders and revenue per category from --ds on; replace the run date in the warehouse."""
    from jobs.forecasting.sales import run_forecast, summary
    from jobs.pipeline.lake import PipelineError

    try:
        frame = run_forecast(
            get_settings(), ds, horizon=horizon, history_days=history_days, level=level, publish=publish
        )
    except PipelineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(summary(frame), indent=2))
