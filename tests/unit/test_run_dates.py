"""How a task finds its run date, and how it passes it on through its asset events (``jobs/pipeline/tasks.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk import Asset

from jobs.pipeline.tasks import partition_date, stamp_outlets, triggering_ds

SILVER = [Asset(name=f"msp.silver.{t}", uri=f"msp://lake/silver/{t}") for t in ("customers", "orders")]


def events(*extras: dict) -> dict:
    """Triggering asset events as the Task SDK gives them: asset -> events with an ``extra``."""
    return {
        SILVER[0]: [SimpleNamespace(extra=e) for e in extras[:1]],
        SILVER[1]: [SimpleNamespace(extra=e) for e in extras[1:]],
    }


def test_the_param_wins_over_everything() -> None:
    context = {"params": {"ds": "2026-09-03"}, "triggering_asset_events": events({"ds": "2026-10-01"})}
    assert partition_date(context | {"logical_date": datetime(2026, 8, 1, tzinfo=UTC)}) == "2026-09-03"


def test_an_asset_triggered_run_takes_the_latest_ds_of_its_events() -> None:
    context = {
        "params": {},
        "logical_date": None,
        "triggering_asset_events": events({"ds": "2026-09-29"}, {"ds": "2026-09-30"}, {}),
    }
    assert triggering_ds(context) == "2026-09-30"
    assert partition_date(context) == "2026-09-30"


def test_events_without_a_ds_fall_back_to_the_logical_date_then_today() -> None:
    bare = {"params": {}, "triggering_asset_events": events({}, {"other": 1})}
    assert triggering_ds(bare) is None
    assert partition_date(bare | {"logical_date": datetime(2026, 9, 2, 5, tzinfo=UTC)}) == "2026-09-02"
    assert partition_date(bare | {"logical_date": None}) == datetime.now(UTC).date().isoformat()


def test_stamp_outlets_puts_the_date_on_every_outlet_event() -> None:
    accessors = {asset: SimpleNamespace(extra={}) for asset in SILVER}
    context = {"outlet_events": accessors, "task": SimpleNamespace(outlets=SILVER)}
    stamp_outlets(context, "2026-09-30", since="2026-09-01")
    assert [a.extra for a in accessors.values()] == [{"ds": "2026-09-30", "since": "2026-09-01"}] * 2
    stamp_outlets({"task": SimpleNamespace(outlets=SILVER)}, "2026-09-30")  # no outlet events: a no-op


@pytest.mark.parametrize("outlets", [None, []])
def test_tasks_without_outlets_stamp_nothing(outlets) -> None:
    accessors: dict = {}
    stamp_outlets({"outlet_events": accessors, "task": SimpleNamespace(outlets=outlets)}, "2026-09-30")
    assert accessors == {}
