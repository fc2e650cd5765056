"""KerasMultiHeadUplift: masked per-strategy heads, learned uplift, sequence input, persistence, determinism."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from jobs.models.keras_uplift import KerasMultiHeadUplift, head_name, parse_tokens

# Keras' own variable-to-numpy conversion (saving, get_weights) trips a NumPy 2 deprecation warning.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

STRATEGIES = ("no_action", "email_recommendations", "coupon_10", "coupon_20", "free_shipping")
SMALL = {
    "embed_dim": 16,
    "ff_dim": 32,
    "tower_units": (32,),
    "head_units": 16,
    "batch_size": 256,
    "learning_rate": 3e-3,
    "patience": 3,
}


def make_data(n: int, seed: int = 0, only: str | None = None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """coupon_20 lifts conversion only where x0 > 0; token 5 in the sequence raises base conversion."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=["x0", "x1", "x2", "x3"])
    treatment = np.full(n, only) if only else rng.choice(STRATEGIES, n)
    has5 = rng.random(n) < 0.5
    seqs = []
    for i, length in enumerate(rng.integers(0, 10, n)):
        tokens = [str(t) for t in rng.integers(6, 60, length)]
        if has5[i]:
            tokens.insert(int(rng.integers(0, length + 1)), "5")
        seqs.append(" ".join(tokens))
    X["seq_tokens"] = seqs
    logit = -1.0 + 0.5 * X["x1"].to_numpy() + 1.5 * has5 + 2.5 * ((treatment == "coupon_20") & (X["x0"].to_numpy() > 0))
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return X, y, treatment


def head_weights(model, strategy: str) -> list[np.ndarray]:
    prefix = head_name(strategy)
    return [w for layer in model.layers if layer.name.startswith(prefix + "_") for w in layer.get_weights()]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    return make_data(6000, seed=1)


@pytest.fixture(scope="module")
def fitted(data) -> KerasMultiHeadUplift:
    X, y, t = data
    revenue = y * np.random.default_rng(2).gamma(2.0, 20.0, len(y))
    return KerasMultiHeadUplift(max_epochs=15, **SMALL).fit(X, y, t, revenue=revenue)


def test_parse_tokens_pads_left_keeps_recent_and_maps_unknown() -> None:
    out = parse_tokens(["", "1 2 3", "5 200 7 8 9 10", None, " 4 "], seq_len=4, vocab_size=128)
    expected = [[0, 0, 0, 0], [0, 1, 2, 3], [7, 8, 9, 10], [0, 0, 0, 0], [0, 0, 0, 4]]
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(parse_tokens(["3 999 -2"], 5, 128), [[0, 0, 3, 1, 1]])


def test_init_stores_params_and_fit_sets_fitted_attributes(fitted: KerasMultiHeadUplift, data) -> None:
    fresh = KerasMultiHeadUplift(seq_len=7, tower_units=(8,))
    assert set(vars(fresh)) == set(fresh.get_params())
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not [k for k in vars(copy) if k.endswith("_")]
    for name in ("model_", "history_", "strategies_", "feature_names_", "mean_", "scale_", "n_epochs_", "best_epoch_"):
        assert hasattr(fitted, name), name
    assert fitted.strategies_ == STRATEGIES
    assert fitted.feature_names_ == ["x0", "x1", "x2", "x3"]
    assert {"loss", "val_loss"} <= set(fitted.history_)
    assert len(fitted.history_["loss"]) == fitted.n_epochs_
    assert 1 <= fitted.best_epoch_ <= fitted.n_epochs_
    X, _, _ = data
    assert fitted.predict_conversion(X.head(50)).shape == (50, len(STRATEGIES))
    assert (fitted.predict_revenue(X.head(50)) >= 0).all()
    uplift = fitted.predict_uplift(X.head(50))
    np.testing.assert_array_equal(uplift[:, 0], 0.0)


@pytest.fixture(scope="module")
def sparse() -> SimpleNamespace:
    """A fit on coupon_10 rows (positive weights) and coupon_20 rows (weight 0) only, plus its initial weights."""
    X10, y10, t10 = make_data(600, seed=4, only="coupon_10")
    X20, y20, t20 = make_data(600, seed=5, only="coupon_20")
    X = pd.concat([X10, X20], ignore_index=True)
    y, t = np.concatenate([y10, y20]), np.concatenate([t10, t20])
    weights = np.where(t == "coupon_20", 0.0, np.random.default_rng(0).uniform(0.5, 2.0, len(t)))
    est = KerasMultiHeadUplift(max_epochs=3, **SMALL)
    returned = est.fit(X, y, t, sample_weight=weights)
    initial = est._build_model(len(est.feature_names_), with_revenue=False)
    return SimpleNamespace(est=est, returned=returned, initial=initial, X=X)


def unchanged_heads(sparse: SimpleNamespace) -> set[str]:
    out = set()
    for strategy in STRATEGIES:
        before, after = head_weights(sparse.initial, strategy), head_weights(sparse.est.model_, strategy)
        assert before and len(before) == len(after), strategy
        if all(np.array_equal(b, a) for b, a in zip(before, after, strict=True)):
            out.add(strategy)
    return out


def test_fit_returns_self(sparse: SimpleNamespace) -> None:
    assert sparse.returned is sparse.est
    with pytest.raises(ValueError, match="without a revenue target"):
        sparse.est.predict_revenue(sparse.X)


def test_loss_is_masked_to_the_logged_strategy_head(sparse: SimpleNamespace) -> None:
    """Only coupon_10 rows carry weight: every other head keeps its initial weights, the shared tower moves."""
    assert "coupon_10" not in unchanged_heads(sparse)
    assert {"no_action", "email_recommendations", "free_shipping"} <= unchanged_heads(sparse)
    tower_before = sparse.initial.get_layer("tower_0").get_weights()[0]
    assert not np.array_equal(tower_before, sparse.est.model_.get_layer("tower_0").get_weights()[0])


def test_zero_sample_weights_leave_that_strategy_head_unchanged(sparse: SimpleNamespace) -> None:
    assert "coupon_20" in unchanged_heads(sparse)


def test_learns_heterogeneous_uplift(fitted: KerasMultiHeadUplift, data) -> None:
    X, _, _ = data
    uplift = fitted.predict_uplift(X, control="no_action")[:, STRATEGIES.index("coupon_20")]
    positive = X["x0"].to_numpy() > 0
    assert uplift[positive].mean() - uplift[~positive].mean() > 0.15


def test_sequence_changes_predictions(fitted: KerasMultiHeadUplift, data) -> None:
    X, _, _ = data
    without5 = ~X["seq_tokens"].str.split().map(lambda tokens: "5" in tokens).to_numpy()
    base = X[without5].head(500)
    with5 = base.assign(seq_tokens=(base["seq_tokens"] + " 5").str.strip())
    p_base, p_with5 = fitted.predict_conversion(base), fitted.predict_conversion(with5)
    assert np.abs(p_with5 - p_base).max() > 1e-3
    assert p_with5[:, 0].mean() > p_base[:, 0].mean() + 0.05


def test_save_load_round_trip(fitted: KerasMultiHeadUplift, data, tmp_path) -> None:
    X, _, _ = data
    sample = X.head(300)
    fitted.save(tmp_path / "model")
    assert {p.name for p in (tmp_path / "model").iterdir()} == {"model.keras", "meta.json"}
    loaded = KerasMultiHeadUplift.load(tmp_path / "model")
    assert loaded.get_params() == fitted.get_params()
    assert loaded.strategies_ == fitted.strategies_
    assert loaded.feature_names_ == fitted.feature_names_
    assert loaded.history_ == fitted.history_
    np.testing.assert_array_equal(loaded.mean_, fitted.mean_)
    np.testing.assert_array_equal(loaded.predict_conversion(sample), fitted.predict_conversion(sample))
    np.testing.assert_array_equal(loaded.predict_revenue(sample), fitted.predict_revenue(sample))


def test_unknown_strategy_is_rejected_by_name() -> None:
    X, y, t = make_data(50, seed=6)
    t = t.copy()
    t[3] = "coupon_50"
    with pytest.raises(ValueError, match="coupon_50"):
        KerasMultiHeadUplift(**SMALL).fit(X, y, t)


def test_equal_random_state_gives_equal_predictions() -> None:
    X, y, t = make_data(600, seed=7)
    runs = [KerasMultiHeadUplift(max_epochs=2, random_state=11, **SMALL).fit(X, y, t) for _ in range(2)]
    np.testing.assert_allclose(runs[0].predict_conversion(X), runs[1].predict_conversion(X), rtol=0, atol=1e-5)
    other = clone(runs[0]).set_params(random_state=12)
    other.strategies_ = runs[0].strategies_
    initial = [
        est._build_model(4, with_revenue=False).get_layer("tower_0").get_weights()[0] for est in (runs[0], other)
    ]
    assert not np.array_equal(*initial)
