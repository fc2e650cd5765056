"""Our XGBoost uplift T-learner on the real Hillstrom data, by scikit-uplift's tutorial protocol (one split).

The data goes through the platform's import (``import_campaign_log`` with the shipped mapping) and
back out of its Parquet; the protocol, the features and the parameter choice (cross-validation on the
train half only) are those of ``make bench``'s ``hillstrom`` benchmark (``tests/bench/models.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.bench.models import (
    GOAL_UPLIFT_AT_30,
    PUBLISHED_UPLIFT_AT_30,
    TUTORIAL_SEED,
    hillstrom_xgb_split,
    load_hillstrom,
)
from tests.conftest import require_datasets

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def tutorial_split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    csv = require_datasets() / "hillstrom.csv"
    frame = load_hillstrom(csv, Path(tmp_path_factory.mktemp("hillstrom-uplift")))
    return hillstrom_xgb_split(frame, seed=TUTORIAL_SEED)


def test_the_tutorial_rows_and_split(tutorial_split: dict[str, Any]) -> None:
    # the tutorial prints (42693, 10) after dropping Mens E-Mail; train_test_split(test_size=0.5) rounds the test up
    assert tutorial_split["rows"] == 42_693
    assert (tutorial_split["train_rows"], tutorial_split["test_rows"]) == (21_346, 21_347)


def test_xgboost_ranks_by_uplift_and_beats_the_published_figure(tutorial_split: dict[str, Any]) -> None:
    assert tutorial_split["qini"] > 0
    assert tutorial_split["uplift_at_30"] > PUBLISHED_UPLIFT_AT_30, tutorial_split


@pytest.mark.xfail(
    strict=True,
    reason="goal not met: with the CV-chosen parameters uplift@30% at random_state 42 is 0.0690 (< 0.070); "
    "see docs/BENCHMARKS.md for the spread over ten splits",
)
def test_xgboost_reaches_the_uplift_goal(tutorial_split: dict[str, Any]) -> None:
    assert tutorial_split["uplift_at_30"] >= GOAL_UPLIFT_AT_30, tutorial_split
