"""A failed critical data check blocks scoring; a later passing check of the same table lifts the block."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from jobs.quality.scoring_gate import check_scoring_inputs
from jobs.quality.validate import QualityError
from jobs.settings import get_settings
from jobs.warehouse import Warehouse


def checks(run_date: str, table: str, critical_ok: bool, warning_ok: bool = True) -> pd.DataFrame:
    rows = [
        ("expect_column_values_to_not_be_null", "customer_id", "critical", critical_ok, 0 if critical_ok else 7),
        ("expect_column_values_to_be_between", "amount", "warning", warning_ok, 0 if warning_ok else 3),
    ]
    return pd.DataFrame(
        [
            {
                "run_date": date.fromisoformat(run_date),
                "table_name": table,
                "expectation": e,
                "column_name": c,
                "severity": sev,
                "success": ok,
                "unexpected_count": bad,
                "element_count": 1000,
                "checked_at": datetime(2026, 10, 30, 3),
            }
            for e, c, sev, ok, bad in rows
        ]
    )


def write(wh: Warehouse, frame: pd.DataFrame) -> None:
    where = {"run_date": frame["run_date"].iloc[0], "table_name": frame["table_name"].iloc[0]}
    wh.replace("data_quality", where, frame)


def test_a_failed_critical_check_blocks_and_a_later_pass_lifts_the_block(msp_home: Path) -> None:
    settings = get_settings()
    wh = Warehouse.from_settings(settings)
    wh.migrate()
    for table in ("customers", "products", "events", "orders", "campaign_log"):
        write(wh, checks("2026-10-28", table, critical_ok=True, warning_ok=False))  # warnings never block
    assert check_scoring_inputs(settings, "2026-10-29")["events"] == "2026-10-28"

    write(wh, checks("2026-10-29", "events", critical_ok=False))
    with pytest.raises(QualityError) as err:
        check_scoring_inputs(settings, "2026-10-30")
    message = str(err.value)
    assert "scoring 2026-10-30 is blocked" in message
    expected = "silver.events checked on 2026-10-29: expect_column_values_to_not_be_null on customer_id failed"
    assert f"{expected} (7 of 1000)" in message
    assert "orders" not in message
    # a check dated after the scoring date does not count
    assert check_scoring_inputs(settings, "2026-10-28")["events"] == "2026-10-28"

    write(wh, checks("2026-10-30", "events", critical_ok=True))  # the rerun of the ingest passed
    assert check_scoring_inputs(settings, "2026-10-30")["events"] == "2026-10-30"


def test_tables_never_checked_are_reported_not_blocking(msp_home: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = get_settings()
    with caplog.at_level("WARNING"):
        result = check_scoring_inputs(settings, "2026-10-30")
    assert set(result.values()) == {"unchecked"}
    assert "silver.campaign_log has no data-quality check up to 2026-10-30" in caplog.text
