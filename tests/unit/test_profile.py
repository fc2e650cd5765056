from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from jobs.training import profile as profile_module
from jobs.training.profile import profile_folder


def frame(shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "orders_30d": [0.0, 1.0, 2.0, 3.0 + shift],
            "revenue_30d": [0.0, 10.0, 25.5, 40.0],
            "strategy": ["no_action", "coupon_10", "no_action", "coupon_10"],
            "converted": [0, 1, 0, 1],
        }
    )


def test_the_profile_is_rendered_once_per_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = profile_folder(frame(), ["orders_30d", "revenue_30d"], tmp_path)
    files = {p.name for p in folder.iterdir()}
    assert files == {"summary.csv", "correlations.csv", "overview.json", "distributions.png", "correlations.png"}
    overview = json.loads((folder / "overview.json").read_text())
    assert overview["rows"] == 4 and overview["conversion_by_strategy"] == {"coupon_10": 1.0, "no_action": 0.0}
    assert (folder / "distributions.png").read_bytes()[:4] == b"\x89PNG"

    def never(*_args, **_kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr(profile_module, "profile", never)
    assert profile_folder(frame(), ["orders_30d", "revenue_30d"], tmp_path) == folder  # the same rows: reused
    with pytest.raises(AssertionError, match="rendered again"):  # other rows: another profile
        profile_folder(frame(shift=1.0), ["orders_30d", "revenue_30d"], tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".staging")] == []
