"""gold/features of a run date is reused only when it is newer than every silver file and the feature code."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from jobs.features import build
from jobs.features.build import SILVER_TABLES, features_fresh
from jobs.settings import Settings

DS = "2026-10-31"


def _touch(path: Path, when: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(b"x")
    os.utime(path, (when, when))


def _lake(tmp_path: Path, features_at: float, silver_at: float) -> Settings:
    settings = Settings(home=tmp_path)
    for table in SILVER_TABLES:
        _touch(settings.lake / "silver" / table / "ds=2026-10-01" / "part-0.parquet", silver_at)
    part = settings.lake / "gold" / "features" / f"ds={DS}"
    part.mkdir(parents=True)
    pd.DataFrame({"customer_id": ["a", "b", "c"]}).to_parquet(part / "part-0.parquet")
    os.utime(part / "part-0.parquet", (features_at, features_at))
    return settings


def _later() -> float:
    """A time after now and after the feature code's last change."""
    return max(time.time(), Path(build.__file__).stat().st_mtime) + 1000


def test_newer_features_are_reused_with_their_row_count(tmp_path: Path) -> None:
    now = _later()
    assert features_fresh(_lake(tmp_path, features_at=now, silver_at=now - 60), DS) == 3


def test_a_silver_change_after_the_build_forces_a_rebuild(tmp_path: Path) -> None:
    now = _later()
    settings = _lake(tmp_path, features_at=now - 60, silver_at=now - 120)
    assert features_fresh(settings, DS) == 3
    # a late correction of an earlier day in one table is enough
    _touch(settings.lake / "silver" / SILVER_TABLES[-1] / "ds=2026-09-02" / "part-9.parquet", now)
    assert features_fresh(settings, DS) is None


def test_changed_feature_code_forces_a_rebuild(tmp_path: Path) -> None:
    code_changed = Path(build.__file__).stat().st_mtime
    assert features_fresh(_lake(tmp_path, features_at=code_changed - 1, silver_at=code_changed - 100), DS) is None


def test_a_missing_or_empty_partition_is_built(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert features_fresh(settings, DS) is None
    (settings.lake / "gold" / "features" / f"ds={DS}").mkdir(parents=True)
    assert features_fresh(settings, DS) is None
