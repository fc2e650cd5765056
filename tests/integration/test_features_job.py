"""The features job on a tiny simulated shop: landing -> silver with the real steps, then gold/features."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.contracts import ORDER
from jobs.features.build import FEATURE_COLUMNS, build_features, campaign_dates, feature_dates
from jobs.pipeline.clean import clean
from jobs.pipeline.ingest import ingest
from jobs.pipeline.lake import PipelineError
from jobs.settings import Settings
from jobs.simulator.config import SimConfig
from jobs.simulator.engine import simulate

CFG = SimConfig(seed=5, customers=300, products=32, days=30)  # campaigns on 2026-09-08 and 2026-09-22
START, END = CFG.start.isoformat(), CFG.end.isoformat()
DATES = ["2026-09-08", "2026-09-22", END]


def sql(settings: Settings, query: str) -> list[tuple]:
    """Run ``query`` with views silver_<table> and gold over the lake of ``settings``."""
    con = duckdb.connect()
    for table in ORDER:
        files = f"{settings.lake}/silver/{table}/ds=*/*.parquet"
        con.execute(
            f"CREATE VIEW silver_{table} AS SELECT * REPLACE (CAST(ds AS VARCHAR) AS ds) "
            f"FROM read_parquet('{files}', hive_partitioning = true, union_by_name = true)"
        )
    gold = settings.lake / "gold" / "features"
    if gold.is_dir():
        con.execute(
            "CREATE VIEW gold AS SELECT * REPLACE (CAST(ds AS VARCHAR) AS ds) "
            f"FROM read_parquet('{gold}/ds=*/*.parquet', hive_partitioning = true)"
        )
    return con.execute(query).fetchall()


def gold_state(settings: Settings) -> tuple[dict[str, int], int, str]:
    """Rows per ds, duplicate (customer_id, ds) keys, and a content checksum of gold/features."""
    counts = dict(sql(settings, "SELECT ds, count(*) FROM gold GROUP BY ds ORDER BY ds"))
    [(dupes,)] = sql(
        settings, "SELECT count(*) FROM (SELECT customer_id, ds FROM gold GROUP BY ALL HAVING count(*) > 1)"
    )
    [(digest,)] = sql(settings, "SELECT md5(string_agg(g::VARCHAR, chr(10) ORDER BY g::VARCHAR)) FROM gold g")
    return counts, dupes, digest


@pytest.fixture(scope="module")
def shop(spark, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(home=tmp_path_factory.mktemp("features-shop"), pii_salt="pepper")
    simulate(CFG, settings.landing, settings.truth)
    for table in ORDER:
        ingest(spark, settings, table, END, START)
        clean(spark, settings, table, END, START)
    return settings


def test_feature_dates_are_the_send_dates_and_the_run_date(spark, shop: Settings) -> None:
    assert campaign_dates(spark, shop, END) == DATES[:2]
    assert campaign_dates(spark, shop, "2026-09-21") == DATES[:1]
    assert feature_dates(spark, shop, END) == DATES


def test_one_row_per_eligible_customer_per_date_and_reruns_are_idempotent(spark, shop: Settings) -> None:
    rows = build_features(spark, shop, DATES)
    query = "SELECT count(DISTINCT customer_id) FROM silver_customers WHERE ds < '{d}' AND signup_date < '{d}'"
    eligible = {d: sql(shop, query.format(d=d))[0][0] for d in DATES}
    assert rows == eligible and all(n > 250 for n in rows.values())
    counts, dupes, digest = gold_state(shop)
    assert (counts, dupes) == (rows, 0)
    assert tuple(name for (name,) in sql(shop, "SELECT column_name FROM (DESCRIBE gold)")) == FEATURE_COLUMNS

    assert build_features(spark, shop, DATES) == rows  # a rerun replaces the partitions
    assert gold_state(shop) == (counts, 0, digest)
    assert build_features(spark, shop, ["2026-09-22"]) == {"2026-09-22": rows["2026-09-22"]}
    assert gold_state(shop) == (counts, 0, digest)  # other dates left alone


def test_features_only_know_campaigns_before_their_date(spark, shop: Settings) -> None:
    build_features(spark, shop, DATES)
    by_date = dict(
        sql(
            shop,
            "SELECT ds, [max(campaigns_received), sum(past_campaign_conversions), max(emails_received_90d)] "
            "FROM gold GROUP BY ds",
        )
    )
    converted = sql(
        shop,
        "SELECT count(*) FROM (SELECT arg_max(converted, updated_at) AS c FROM silver_campaign_log "
        "WHERE updated_at < '2026-09-22' GROUP BY campaign_id, customer_id) WHERE c",
    )[0][0]
    assert by_date["2026-09-08"] == [0, 0, 0]  # the first campaign is sent on that day
    assert by_date["2026-09-22"] == [1, converted, 1]  # its outcomes were written on 2026-09-15
    assert by_date[END][0] == 2


def test_cli_builds_the_default_dates_and_names_a_missing_table(spark, shop: Settings, msp_home: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["features", "build", "--ds", END])
    assert result.exit_code == 2 and "silver table 'campaign_log' does not exist" in result.output

    shutil.copytree(shop.lake / "silver", msp_home / "var" / "lake" / "silver")
    result = runner.invoke(app, ["features", "build", "--ds", END])
    assert result.exit_code == 0, result.output
    for day in DATES:
        assert day in result.output
    assert sorted(p.name for p in (msp_home / "var/lake/gold/features").glob("ds=*")) == [f"ds={d}" for d in DATES]

    result = runner.invoke(app, ["features", "build", "--ds", "2026-09-10", "--dates", "2026-09-08,2026-09-20"])
    assert result.exit_code == 2 and "after --ds" in result.output


def test_a_missing_silver_table_is_named(spark, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="silver table 'customers'"):
        build_features(spark, Settings(home=tmp_path), ["2026-09-08"])
