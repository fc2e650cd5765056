"""The shipped Hillstrom mapping on the real data set: counts, arm means and the written Parquet."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from jobs.imports.campaign_log import ImportResult, import_campaign_log, shipped_mapping
from jobs.simulator.tables import CAMPAIGN_LOG_SCHEMA
from tests.conftest import require_datasets

FEATURES = ["recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel"]

#: rows per arm, counted in hillstrom.csv
ARM_ROWS = {"email_mens": 21_307, "email_womens": 21_387, "no_action": 21_306}

#: ../shared/datasets/README.md: visit % (2 decimals), conversion % (3 decimals), spend $ (3 decimals)
README_MEANS = {
    "email_mens": (18.28, 1.253, 1.423),
    "email_womens": (15.14, 0.884, 1.077),
    "no_action": (10.62, 0.573, 0.653),
}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> ImportResult:
    source = require_datasets() / "hillstrom.csv"
    return import_campaign_log(source, shipped_mapping("hillstrom"), tmp_path_factory.mktemp("hillstrom"))


@pytest.fixture(scope="module")
def log_table(imported: ImportResult) -> pa.Table:
    return pq.read_table(imported.campaign_log)


def test_all_rows_with_the_real_arm_counts(imported: ImportResult) -> None:
    assert imported.rows == 64_000
    assert imported.per_strategy == {"no_action": 21_306, "email_mens": 21_307, "email_womens": 21_387}
    assert imported.holdouts == ARM_ROWS["no_action"]
    assert imported.ds == "2008-03-01"
    assert imported.campaign_log.parent.name == "ds=2008-03-01"
    assert imported.campaign_log.parent.parent.name == "campaign_log"


def test_parquet_round_trips_with_the_landing_schema(log_table: pa.Table) -> None:
    assert log_table.schema == CAMPAIGN_LOG_SCHEMA
    assert log_table.num_rows == 64_000
    assert pc.all(pc.equal(log_table["propensity"], 1 / 3)).as_py()
    assert log_table["customer_id"][0].as_py() == "H0000001"
    assert log_table["customer_id"][63_999].as_py() == "H0064000"
    assert pc.count_distinct(log_table["customer_id"]).as_py() == 64_000
    assert pc.unique(log_table["campaign_id"]).to_pylist() == ["HILLSTROM-2008-03"]
    assert pc.unique(log_table["ts"]).cast(pa.int64()).to_pylist() == [1_204_329_600_000]  # 2008-03-01 UTC
    assert log_table["ts"].equals(log_table["updated_at"])
    for column in ("visited", "converted", "revenue", "is_holdout"):
        assert log_table[column].null_count == 0, column
    counts = dict(zip(*pc.value_counts(log_table["strategy"]).flatten(), strict=True))
    assert {k.as_py(): v.as_py() for k, v in counts.items()} == ARM_ROWS
    holdout = pc.equal(log_table["strategy"], "no_action")
    assert log_table["is_holdout"].equals(holdout)


@pytest.mark.parametrize("strategy", sorted(README_MEANS))
def test_arm_means_equal_the_readme(log_table: pa.Table, strategy: str) -> None:
    arm = log_table.filter(pc.equal(log_table["strategy"], strategy))
    assert arm.num_rows == ARM_ROWS[strategy]
    visit = pc.mean(arm["visited"].cast(pa.float64())).as_py()
    conversion = pc.mean(arm["converted"].cast(pa.float64())).as_py()
    spend = pc.mean(arm["revenue"]).as_py()
    assert (round(100 * visit, 2), round(100 * conversion, 3), round(spend, 3)) == README_MEANS[strategy]


def test_customer_attributes_hold_the_eight_features(imported: ImportResult) -> None:
    attributes = pq.read_table(imported.customer_attributes)
    assert attributes.num_rows == 64_000
    assert attributes.column_names == ["customer_id", *FEATURES]
    assert attributes.schema.field("history").type == pa.float64()
    assert attributes.schema.field("recency").type == pa.int64()
    assert attributes.schema.field("zip_code").type == pa.string()
    assert set(pc.unique(attributes["channel"]).to_pylist()) == {"Phone", "Web", "Multichannel"}
    log_ids = pq.read_table(imported.campaign_log, columns=["customer_id"])["customer_id"]
    assert attributes["customer_id"].equals(log_ids)


def test_rerun_replaces_the_partition(imported: ImportResult) -> None:
    root = imported.campaign_log.parents[2]
    again = import_campaign_log(require_datasets() / "hillstrom.csv", shipped_mapping("hillstrom"), Path(root))
    assert again.campaign_log == imported.campaign_log
    assert [p.name for p in imported.campaign_log.parent.iterdir()] == ["hillstrom.parquet"]
    assert pq.read_metadata(again.campaign_log).num_rows == 64_000
