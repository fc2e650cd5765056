"""``msp pull``: fill the landing zone from a source (``msp pull http --table orders --ds ...``)."""

from __future__ import annotations

from typing import Annotated

import typer

from jobs.settings import get_settings

pull_app = typer.Typer(
    help="Pull landing data from an outside source into the landing zone.",
    no_args_is_help=True,
)


@pull_app.command("http")
def http_command(
    table: Annotated[str, typer.Option(help="Table to pull (endpoint /<table> of the API).")],
    ds: Annotated[str, typer.Option(help="Partition date to pull (YYYY-MM-DD).")],
    url: Annotated[str | None, typer.Option("--url", help="API base URL (overrides MSP_HTTP_BASE_URL).")] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Delete this ds's http pages and checkpoint, pull again.")
    ] = False,
) -> None:
    """Pull one table's JSON pages for one ds from the shop's REST API, resuming an earlier pull."""
    from jobs.sources.http import HttpSourceConfig, HttpSourceError, pull

    try:
        settings = get_settings()
        config = HttpSourceConfig.from_settings(settings, base_url=url)
        result = pull(table, ds, settings.landing, config, restart=restart)
    except (HttpSourceError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    folder = result.state_path.parent
    if result.skipped:
        typer.echo(
            f"{result.table} ds={result.ds} already complete: {result.total_pages} pages, "
            f"{result.total_records:,} records in {folder}; nothing fetched (--restart pulls again)"
        )
        return
    typer.echo(
        f"pulled {result.table} ds={result.ds} from {result.url}: {result.pages} pages, "
        f"{result.records:,} records this run ({result.total_pages} pages, "
        f"{result.total_records:,} records in total)"
    )
    for path in result.paths:
        typer.echo(f"  {path}")
    typer.echo(f"  checkpoint: {result.state_path}")
