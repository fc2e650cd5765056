"""PSI on tiny and simulated populations: exact values, stable populations quiet, shifted ones flagged."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from jobs.monitoring.drift import EPSILON, categorical_psi, drift_report, level_of, numeric_psi


def test_categorical_psi_matches_the_formula() -> None:
    # reference 50/50, current 80/20: (0.8-0.5)ln(0.8/0.5) + (0.2-0.5)ln(0.2/0.5)
    expected = 0.3 * math.log(1.6) + (-0.3) * math.log(0.4)
    assert categorical_psi(["a", "b"] * 50, ["a"] * 80 + ["b"] * 20) == pytest.approx(expected)


def test_identical_populations_have_zero_psi_and_missing_values_are_a_bin() -> None:
    values = [1.0, 2.0, 3.0, 4.0, np.nan] * 20
    assert numeric_psi(values, values) == pytest.approx(0.0)
    # all-missing current: the missing bin goes from 0.2 to 1.0, the other bins to EPSILON
    psi = numeric_psi(values, [np.nan] * 10)
    bins = [(EPSILON, 0.2)] * 4 + [(1.0, 0.2)]
    assert psi == pytest.approx(sum((a - e) * math.log(a / e) for a, e in bins), rel=1e-3)


def test_an_unseen_category_raises_psi() -> None:
    assert categorical_psi(["x"] * 90 + ["y"] * 10, ["x"] * 90 + ["z"] * 10) > 0.25


def test_stable_sample_is_quiet_and_shifted_one_alerts() -> None:
    rng = np.random.default_rng(7)
    reference = pd.DataFrame(
        {"recency": rng.exponential(30, 20_000), "region": rng.choice(["n", "s", "e", "w"], 20_000)}
    )
    stable = pd.DataFrame({"recency": rng.exponential(30, 20_000), "region": rng.choice(["n", "s", "e", "w"], 20_000)})
    shifted = pd.DataFrame(
        {
            "recency": rng.exponential(60, 20_000),  # customers lapsing: twice the mean recency
            "region": rng.choice(["n", "s", "e", "w"], 20_000, p=[0.7, 0.1, 0.1, 0.1]),
        }
    )
    quiet = drift_report(reference, stable, ["recency", "region"])
    assert [d.level for d in quiet] == ["ok", "ok"] and max(d.psi for d in quiet) < 0.01
    loud = {d.column: d for d in drift_report(reference, shifted, ["recency", "region"])}
    assert loud["recency"].level == "alert" and loud["recency"].kind == "numeric"
    assert loud["region"].level == "alert" and loud["region"].kind == "categorical"


def test_thresholds_and_missing_columns_are_checked() -> None:
    assert [level_of(p, 0.1, 0.25) for p in (0.05, 0.1, 0.3)] == ["ok", "warn", "alert"]
    with pytest.raises(ValueError, match="warn <= alert"):
        level_of(0.2, 0.3, 0.2)
    with pytest.raises(KeyError, match="missing from the current population"):
        drift_report(pd.DataFrame({"a": [1]}), pd.DataFrame({"b": [1]}), ["a"])


def _shop_population(cfg, day: int) -> pd.DataFrame:
    """The simulator's customers who exist on ``day``: channel, age and tenure, as the features show them."""
    from jobs.simulator.world import make_population

    frame = make_population(cfg).frame
    frame = frame[frame["signup_day"] <= day]
    return pd.DataFrame(
        {"channel": frame["channel"], "age": 2026 - frame["birth_year"], "tenure_days": day - frame["signup_day"]}
    )


def test_psi_flags_the_simulators_injected_shift_and_stays_quiet_on_a_stable_shop() -> None:
    from jobs.simulator.config import SimConfig
    from jobs.simulator.world import make_population

    stable, shifted = SimConfig(customers=20_000), SimConfig(customers=20_000, shift_day=40, shift_share=0.4)
    # the knob off leaves the population exactly as it was
    pd.testing.assert_frame_equal(make_population(stable).frame, make_population(SimConfig(customers=20_000)).frame)
    columns = ["channel", "age", "tenure_days"]
    quiet = drift_report(_shop_population(stable, 39), _shop_population(stable, 59), columns)
    assert {d.level for d in quiet} == {"ok"}, quiet
    loud = {d.column: d for d in drift_report(_shop_population(shifted, 39), _shop_population(shifted, 59), columns)}
    assert loud["channel"].level == "alert" and loud["age"].level == "alert", loud
