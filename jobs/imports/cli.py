"""``msp import``: external data sets into the platform's landing formats through a mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import_app = typer.Typer(
    help="Import external data sets (A/B tests, campaign exports) into landing formats through a mapping.",
    no_args_is_help=True,
)

OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Landing root to write into (default: <lake>/datasets/<dataset>/landing)."),
]
BadRowsOpt = Annotated[
    str | None,
    typer.Option(
        "--bad-rows",
        help="Rows that break the mapping: 'fail' (one error naming them) or 'quarantine' (set aside in "
        "<landing>/quarantine with the line and the reason; the valid rows are imported). Default: the mapping's "
        "on_bad_rows, else fail.",
    ),
]


@import_app.command("campaign-log")
def campaign_log_command(
    mapping: Annotated[
        str,
        typer.Option("--mapping", "-m", help="Mapping YAML, or the name of a shipped mapping (e.g. hillstrom)."),
    ],
    file: Annotated[
        Path | None,
        typer.Argument(
            help="The export to import: .csv, .jsonl/.ndjson or .parquet (omit it for a mapping with a source, "
            "e.g. thornton_hiv, whose rows ship inside a package)."
        ),
    ] = None,
    output: OutputOpt = None,
    bad_rows: BadRowsOpt = None,
) -> None:
    """Map an A/B-test or campaign export into campaign_log and customer_attributes (partition ds)."""
    from jobs.imports.campaign_log import (
        CampaignImportError,
        default_output_root,
        import_campaign_log,
        load_mapping,
        resolve_mapping,
    )

    try:
        spec = load_mapping(resolve_mapping(mapping))
        root = output if output is not None else default_output_root(spec.dataset)
        result = import_campaign_log(file, spec, root, on_bad_rows=bad_rows)
    except CampaignImportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    source = file if file is not None else f"the package data set {spec.source.package_dataset}"  # type: ignore[union-attr]
    typer.echo(
        f"imported {result.rows:,} rows of {source} as campaign {result.campaign_id} "
        f"(dataset {result.dataset}, ds={result.ds})"
    )
    width = max(len("strategy"), *(len(name) for name in result.per_strategy))
    typer.echo(f"  {'strategy':<{width}} {'rows':>10}")
    for name, rows in result.per_strategy.items():
        typer.echo(f"  {name:<{width}} {rows:>10,}")
    typer.echo(f"  holdout rows: {result.holdouts:,}")
    typer.echo(f"  campaign_log:        {result.campaign_log}")
    typer.echo(f"  customer_attributes: {result.customer_attributes}")
    if result.quarantine is not None:
        typer.echo(f"  quarantined rows:    {result.quarantined:,} in {result.quarantine} (column reason says why)")


@import_app.command("orders")
def orders_command(
    file: Annotated[
        Path, typer.Argument(help="The order history: .csv, .jsonl/.ndjson or .parquet (one row per order line).")
    ],
    mapping: Annotated[str, typer.Option("--mapping", "-m", help="Mapping YAML with kind: orders.")],
    output: OutputOpt = None,
    bad_rows: BadRowsOpt = None,
) -> None:
    """Import a shop's order history alone (no events, no campaigns): RFM, repeat propensity, value targeting."""
    from jobs.imports.campaign_log import CampaignImportError, default_output_root
    from jobs.imports.orders import import_orders, load_orders_mapping

    try:
        spec = load_orders_mapping(mapping)
        root = output if output is not None else default_output_root(spec.dataset)
        result = import_orders(file, spec, root, on_bad_rows=bad_rows)
    except CampaignImportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"imported {result.lines:,} order lines of {file} as {result.orders:,} orders of {result.customers:,} "
        f"customers ({result.first_order} to {result.last_order}; dataset {result.dataset})"
    )
    typer.echo(f"  orders: {result.path}")
    typer.echo("  absent (an order history has none; not needed): events, campaign_log, customer_attributes, products")
    if result.quarantine is not None:
        typer.echo(f"  quarantined rows: {result.quarantined:,} in {result.quarantine} (column reason says why)")
    typer.echo(f"next: msp train --dataset {result.dataset} && msp score --dataset {result.dataset}")
