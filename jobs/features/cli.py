"""``msp features``: build the point-in-time customer features (``msp features build --ds ...``)."""

from __future__ import annotations

import logging
import time
from typing import Annotated

import typer

from jobs.settings import get_settings

features_app = typer.Typer(help="Point-in-time customer features (silver -> gold/features).", no_args_is_help=True)
log = logging.getLogger(__name__)


def _parse_dates(ds: str, dates: str | None) -> list[str] | None:
    """The ``--dates`` list checked and sorted (None: the default dates), or a BadParameter."""
    from jobs.pipeline.lake import PipelineError, check_ds

    try:
        ds = check_ds(ds)
        if dates is None:
            return None
        wanted = sorted({check_ds(d.strip()) for d in dates.split(",") if d.strip()})
    except PipelineError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not wanted:
        raise typer.BadParameter("--dates names no date", param_hint="--dates")
    if later := [d for d in wanted if d > ds]:
        raise typer.BadParameter(f"dates {later} are after --ds {ds}", param_hint="--dates")
    return wanted


@features_app.command("build")
def build_command(
    ds: Annotated[str, typer.Option(help="Run date (YYYY-MM-DD): silver is read up to it.")],
    dates: Annotated[
        str | None,
        typer.Option(help="Comma-separated as-of dates (default: the campaign send dates up to --ds, and --ds)."),
    ] = None,
) -> None:
    """Compute the features as of each date and replace those partitions of gold/features."""
    from jobs.features.build import build_features, feature_dates
    from jobs.pipeline.lake import PipelineError, check_ds
    from jobs.spark import get_spark

    wanted = _parse_dates(ds, dates)
    settings = get_settings()
    t0 = time.perf_counter()
    try:
        spark = get_spark(settings, "msp-features")
        rows = build_features(spark, settings, wanted or feature_dates(spark, settings, check_ds(ds)))
    except PipelineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"gold/features: {len(rows)} date(s) in {time.perf_counter() - t0:.1f} s")
    typer.echo(f"  {'as_of':<10} {'rows':>9}")
    for day, n in rows.items():
        typer.echo(f"  {day:<10} {n:>9,}")
