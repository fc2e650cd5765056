"""The scaling benchmark's measuring parts: process-tree peak memory, exponents, the markdown."""

from __future__ import annotations

import sys

import pytest

from tests.bench.run import scaling_markdown
from tests.bench.scaling import STAGES, exponent, run_tree, stage_exponent, summarise


def test_run_tree_counts_the_memory_of_grandchildren() -> None:
    """A child that starts a grandchild holding ~300 MB: the peak includes it (as Spark's JVM would be)."""
    grandchild = "b = bytearray(300 * 1024 * 1024); import time; time.sleep(1.5)"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}], check=True)"
    run = run_tree([sys.executable, "-c", child], env={})
    assert run.peak_mb > 300
    assert run.seconds >= 1.5


def test_run_tree_reports_a_failing_command_with_its_stderr() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        run_tree([sys.executable, "-c", "import sys; sys.exit('boom')"], env={})


def test_exponents() -> None:
    assert exponent({"customers": 100, "seconds": 10.0}, {"customers": 1000, "seconds": 100.0}) == 1.0
    assert exponent({"customers": 100, "seconds": 10.0}, {"customers": 1000, "seconds": 10.0}) == 0.0
    a = {"customers": 10, "stages": {"train": {"seconds": 4.0}}}
    b = {"customers": 40, "stages": {"train": {"seconds": 16.0}}}
    assert stage_exponent(a, b, "train") == 1.0


def _run(n: int, seconds: float) -> dict:
    stages = {s: {"seconds": seconds, "peak_mb": 100, "customers_per_s": round(n / seconds)} for s in STAGES}
    return {
        "customers": n,
        "stages": stages,
        "seconds": seconds * len(STAGES),
        "peak_mb": 100,
        "decision_quality": {"policy": 80.0, "oracle": 100.0, "ratio_to_oracle": 0.8},
    }


def test_markdown_names_the_goal_and_every_stage() -> None:
    results = {
        "days": 60,
        "products": 1000,
        "runs": [_run(10, 1.0), _run(100, 12.0)],
        "exponents": [{"from": 10, "to": 100, "total": 1.08, **dict.fromkeys(STAGES, 1.08)}],
        "goal": {"exponent_max": 1.1, "from": 10, "to": 100},
        "goal_met": True,
    }
    text = "\n".join(scaling_markdown(results))
    assert all(f"`{stage}`" in text for stage in STAGES)
    assert "| **total** | 5.0 | 60.0 |" in text
    assert "**met**" in text
    assert "| 100 | 80 | 100 | 0.800 | - (-) | - | - | - | - |" in text  # not computed at this size: dashes
    assert "policy / oracle at least 0.65 (0.800, 0.800): **met**" in text
    assert "policy / best single at least 1.5 (-, -): **NOT met**" in text  # unmeasured is not met


def test_decision_quality_markdown_gives_every_ratio_and_the_loss_decomposition() -> None:
    from tests.bench.run import decision_quality_markdown

    q = {
        "policy": 70.0,
        "oracle": 100.0,
        "ratio_to_oracle": 0.7,
        "best_single": 40.0,
        "best_single_strategy": "email_recommendations",
        "ratio_to_best_single": 1.75,
        "feature_ceiling_to_oracle": 0.75,
        "ratio_to_feature_ceiling": 0.933,
        "ratio_to_randomised_feature_ceiling": 1.02,
        "deterministic_to_oracle": 0.77,
        "model_conversion_true_order_value_to_oracle": 0.8,
        "true_conversion_model_order_value_to_oracle": 0.9,
    }
    text = "\n".join(decision_quality_markdown([("10,000", q)]))
    assert "| 10,000 | 70 | 100 | 0.700 | 40 (email_recommendations) | 1.75 | 0.750 | 0.933 | 1.020 |" in text
    assert "| 10,000 | 0.770 | 0.800 | 0.900 |" in text
    assert "policy / feature ceiling at least 0.9 (0.933): **met**" in text


def test_markdown_reports_a_failed_stage_and_an_unmeasured_goal() -> None:
    results = {
        "days": 60,
        "products": 1000,
        "runs": [_run(10, 1.0)],
        "failed": {"customers": 100, "stage": "score", "error": "java.lang.OutOfMemoryError: Java heap space"},
        "exponents": [],
        "goal": {"exponent_max": 1.1},
        "goal_met": False,
    }
    text = "\n".join(scaling_markdown(results))
    assert "**Failed**: stage `score` at 100 customers" in text
    assert "OutOfMemoryError" in text
    assert "**not measured**" in text


def test_a_failure_at_the_largest_size_keeps_its_measured_stages_and_fails_the_goal() -> None:
    """Two sizes passed (10 -> 100 scales fine), 1,000 failed in score: the goal's pair is not measured."""
    done = {"simulate": {"seconds": 40.0, "peak_mb": 300, "customers_per_s": 25}}
    passed = {"days": 60, "products": 1000, "runs": [_run(10, 1.0), _run(100, 4.0)]}
    assert summarise(dict(passed))["goal_met"] is True  # exponent 0.6 everywhere
    failed = {"customers": 1000, "stage": "score", "error": "TaskResultLost", "stages": done}
    results = summarise({**passed, "failed": failed})
    assert results["goal_met"] is False and results["goal"]["to"] == 100
    text = "\n".join(scaling_markdown(results))
    assert "Measured at 1,000 customers before the failure: `simulate` 40.0 s, peak 300 MB" in text
    assert "(exponent from 100: 1.0)" in text  # 4 s -> 40 s over 10x the customers
    assert "**NOT met** (the run at 1,000 customers failed" in text
    (goal,) = [line for line in text.splitlines() if line.startswith("Goal (issue 8)")]
    assert "**met**" not in goal


def test_a_stopped_run_is_published_from_its_partial_file_with_the_sizes_it_did_not_run(tmp_path) -> None:
    import json

    from tests.bench.scaling import SIZES, from_partial

    runs = [_run(SIZES[0], 1.0), _run(SIZES[1], 4.0)]
    partial = tmp_path / "scaling-partial.json"
    partial.write_text(json.dumps({"days": 60, "products": 1000, "runs": runs, "in_progress": {"customers": 1}}))
    results = from_partial(partial)
    assert results["stopped_before"] == list(SIZES[2:]) and "in_progress" not in results
    assert results["goal_met"] is False  # the goal's pair is the two largest sizes: not both measured
    text = "\n".join(scaling_markdown(results))
    assert f"**Stopped** after {SIZES[1]:,} customers: {SIZES[2]:,} not run" in text
    (goal,) = [line for line in text.splitlines() if line.startswith("Goal (issue 8)")]
    assert "**not measured**" in goal


def test_the_demo_benchmark_reads_the_stage_times_the_demo_prints() -> None:
    from tests.bench.demo import stage_times

    report = "\n".join(
        [
            "Where to look:",
            "  UIs            make ui",
            "",
            "Stage times:",
            "  simulate the shop (landing zone + ground truth)     6.2 s",
            "  marketing_ingest through Airflow                  101.5 s",
            "Demo finished in 108 s.",
        ]
    )
    assert stage_times(report) == {
        "simulate the shop (landing zone + ground truth)": 6.2,
        "marketing_ingest through Airflow": 101.5,
    }
    with pytest.raises(RuntimeError, match="no 'Stage times:' summary"):
        stage_times("Demo finished in 1 s.")
