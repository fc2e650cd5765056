"""The data sets benchmark's page: its table rows and its verdict follow the figures."""

from __future__ import annotations

from tests.bench.datasets import datasets_markdown, printed_json


def result(values: list[float]) -> dict:
    per_seed = [
        {"seed": i, "champion": "xgboost", "uplift_at_30": v, "qini": 0.05, "seconds": 9.0}
        for i, v in enumerate(values)
    ]
    mean = sum(values) / len(values)
    return {
        "csv": "shared/datasets/hillstrom.csv",
        "seconds": 99.0,
        "tutorial": {
            "seeds": list(range(len(values))),
            "rows": 42_693,
            "uplift_at_30_mean": round(mean, 4),
            "uplift_at_30_sd": 0.01,
            "published": 0.0661,
            "goal_min": 0.070,
            "goal_met": mean >= 0.070,
            "per_seed": per_seed,
        },
        "policies": {
            "hillstrom": {
                "champion": "keras",
                "policy_profit_ips": 1.25,
                "policy_profit_ips_lo": 1.0,
                "policy_profit_ips_hi": 1.5,
                "best_single_profit_ips": 1.4,
                "test_rows": 32_080,
            },
            "thornton_hiv": {"skipped": "msp import campaign-log --mapping thornton_hiv failed (2): no causaldata"},
        },
    }


def test_the_page_gives_each_split_the_mean_and_the_verdict() -> None:
    text = "\n".join(datasets_markdown(result([0.08, 0.07]), "## Real data sets"))
    assert "| 1 | xgboost | 0.0700 | 0.0500 | 9.0 |" in text
    assert "Mean uplift@30% **0.0750** (sd 0.0100)" in text and "goal at least 0.07: **met**" in text
    assert "| hillstrom | keras | 1.2500 | [1.0000, 1.5000] | 1.4000 | 32,080 |" in text
    assert "| thornton_hiv | skipped: msp import campaign-log --mapping thornton_hiv failed (2)" in text
    low = "\n".join(datasets_markdown(result([0.06, 0.07]), "## Real data sets"))
    assert "goal at least 0.07: **NOT met**" in low


def test_the_json_an_msp_command_prints_after_its_log_lines() -> None:
    assert printed_json('21:00 INFO training\n{\n  "champion": "2"\n}\n') == {"champion": "2"}
