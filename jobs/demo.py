"""``msp demo``: the whole pipeline end to end on embedded defaults, stage by stage.

Each stage logs when it starts and what it produced; the summary at the end says where to look.
Later stages (ingest, train, score, evaluate) join this list as they land.
"""

from __future__ import annotations

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
    report.add(
        f"Shop simulated: {cfg.customers:,} customers, {cfg.products:,} products, {cfg.start}..{cfg.end}"
    )
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
    report.add("")
    report.add("Where to look:")
    report.add(f"  landing zone   {result.landing}/<table>/ds=YYYY-MM-DD/")
    report.add(f"  ground truth   {result.truth}/manifest.json, dirt.parquet, campaign_truth/ds=*/")
    report.add("  documentation  docs/SIMULATOR.md (truth and dirt record), docs/ARCHITECTURE.md")
    report.add("  settings       .venv/bin/msp config")
    report.add("  close the loop .venv/bin/msp simulate respond --assignments FILE --date YYYY-MM-DD")


STAGES: list[tuple[str, Callable[[Settings, DemoReport], None]]] = [
    ("simulate the shop (landing zone + ground truth)", _simulate),
]


def run_demo(settings: Settings) -> DemoReport:
    """Run every stage in order; a failing stage stops the demo with its error."""
    report = DemoReport()
    t0 = time.perf_counter()
    for i, (name, stage) in enumerate(STAGES, 1):
        log.info("[stage %d/%d] %s", i, len(STAGES), name)
        t = time.perf_counter()
        stage(settings, report)
        log.info("[stage %d/%d] done in %.1f s", i, len(STAGES), time.perf_counter() - t)
    report.add(f"Demo finished in {time.perf_counter() - t0:.0f} s.")
    return report
