"""Permutation importance of a Keras predictor: one batched prediction gives the values of one call per column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.models.frame import STRATEGIES, FeatureSpec
from jobs.models.metrics import classification_metrics
from jobs.training.train import Prepared, fit_keras, importance

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def test_permutation_importance_matches_one_prediction_per_column_and_finds_the_driver() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    gold = pd.DataFrame(
        {
            "x0": rng.normal(size=n),
            "x1": rng.normal(size=n),
            "region": rng.choice(["north", "south"], n),
            "strategy": np.array(STRATEGIES)[rng.integers(0, len(STRATEGIES), n)],
        }
    )
    gold["converted"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-(2.5 * gold["x1"] - 0.5)))).astype(int)
    gold["revenue"] = gold["converted"] * 30.0
    gold["seq_tokens"] = [" ".join(map(str, rng.integers(2, 40, k))) for k in rng.integers(0, 6, n)]
    spec = FeatureSpec.learn(gold, ["x0", "x1"], ["region"], sequence="seq_tokens")
    flat = spec.flatten(gold)
    train, test = slice(0, 2000), slice(2000, n)
    prep = Prepared(
        "2026-10-30",
        gold,
        gold.iloc[train].reset_index(drop=True),
        gold.iloc[test].reset_index(drop=True),
        spec,
        flat.iloc[train].reset_index(drop=True),
        flat.iloc[test].reset_index(drop=True),
    )
    small = {"tower_units": (16,), "head_units": 8, "embed_dim": 8, "ff_dim": 16, "batch_size": 256}
    prep.train["propensity"] = 1.0 / len(STRATEGIES)
    predictor = fit_keras(prep, {"max_epochs": 4, "random_state": 0, **small})

    got = importance(predictor, prep, rows=600, seed=7)

    # the reference: the same sample and permutations, one prediction per column
    ref_rng = np.random.default_rng(7)
    idx = ref_rng.choice(len(prep.flat_test), size=600, replace=False)
    sample = prep.flat_test.iloc[idx].reset_index(drop=True)
    y = prep.test["converted"].to_numpy()[idx]
    col = prep.test["strategy"].map({s: j for j, s in enumerate(predictor.strategies)}).to_numpy()[idx]

    def auc(frame: pd.DataFrame) -> float:
        return classification_metrics(y, predictor.predict(frame)[0][np.arange(len(frame)), col])["auc"]

    base = auc(sample)
    expected = {}
    for name in spec.input_columns:
        shuffled = sample.copy()
        shuffled[name] = ref_rng.permutation(shuffled[name].to_numpy())
        expected[name] = max(0.0, base - auc(shuffled))

    assert list(got) == list(spec.input_columns)
    assert got == pytest.approx(expected, abs=1e-6)
    assert max(got, key=got.get) == "x1" and got["x1"] > 0.1
