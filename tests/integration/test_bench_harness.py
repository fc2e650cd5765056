"""The benchmark harness runs end to end at tiny sizes (figures come from `make bench`, not from here).

The data benchmarks run first (in process); the model, scoring and warehouse benchmarks then run as a
partial run on top of their results, through the command line, so every benchmark runs once and the
partial run's merge (other benchmarks' figures kept) is checked too. Scoring needs the demo state
(`make demo`) and is left out without it (the refusal is checked instead); the warehouse benchmark needs
PostgreSQL and is left out without it, except in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.dags import dag_files
from tests.bench.run import BENCHMARKS, SECTION_TITLES, ensure_postgres, main, markdown_sections, render_markdown
from tests.bench.scoring import DemoStateMissing, demo_state
from tests.conftest import DATASETS, ROOT


def _demo_state_present() -> bool:
    try:
        demo_state(ROOT / "var")
    except DemoStateMissing:
        return False
    return True


def _postgres_present() -> bool:
    try:
        ensure_postgres()
    except RuntimeError:
        if os.environ.get("CI"):
            raise
        return False
    return True


@pytest.fixture(scope="module")
def data_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``--quick --only dag_parse,simulator,ingest``: (results.json, BENCHMARKS.md)."""
    folder = tmp_path_factory.mktemp("bench")
    results, markdown = folder / "results.json", folder / "BENCHMARKS.md"
    args = ["--quick", "--only", "dag_parse,simulator,ingest", "--results", str(results), "--markdown", str(markdown)]
    assert main(args) == 0
    return results, markdown


def test_bench_quick_writes_results_and_markdown(data_run: tuple[Path, Path]) -> None:
    results, markdown = data_run
    data = json.loads(results.read_text())
    runs = data["simulator"]["runs"]
    assert [r["customers"] for r in runs] == [1_000, 2_000]
    assert all(r["rows"] > 0 and r["peak_rss_mb"] > 0 and r["ratio_to_io_floor"] > 0 for r in runs)
    ingest = data["ingest"]
    assert ingest["spark_silver_rows"] == ingest["clean_rows_expected"], "Spark's silver must match the truth"
    assert ingest["duckdb_silver_rows"] > 0 and ingest["ratio_spark_to_duckdb"] > 0
    parse = data["dag_parse"]
    assert [r["file"] for r in parse["files"]] == [f"dags/{p.name}" for p in dag_files()]
    assert all(0 < r["median_s"] <= r["max_s"] and r["ratio_to_reference"] > 0 for r in parse["files"])
    assert parse["reference_median_s"] > 0 and isinstance(parse["goal_met"], bool)
    text = markdown.read_text()
    assert "## DAG parse time" in text and "`dags/marketing_score.py`" in text
    assert "## Shop simulator" in text and "| 2,000 |" in text
    assert "## Ingest + clean of events" in text


def test_bench_quick_model_benchmarks_add_their_sections(data_run: tuple[Path, Path], tmp_path: Path) -> None:
    results, markdown = tmp_path / "results.json", tmp_path / "B.md"
    shutil.copy(data_run[0], results)
    shutil.copy(data_run[1], markdown)
    before = json.loads(results.read_text())
    # an earlier partial run's results.json may lack a benchmark the markdown shows: its section must survive
    results.write_text(json.dumps({k: v for k, v in before.items() if k != "simulator"}))
    simulator_section = markdown_sections(markdown.read_text())["simulator"]
    only = ["hillstrom", "train_overhead"]
    only += ["scoring"] if _demo_state_present() else []
    only += ["warehouse"] if _postgres_present() else []
    command = [sys.executable, "-m", "tests.bench.run", "--quick", "--only", ",".join(only)]
    proc = subprocess.run(
        [*command, "--results", str(results), "--markdown", str(markdown)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(results.read_text())
    assert all(data[name] == before[name] for name in ("dag_parse", "ingest")), "a partial run keeps them"
    assert "simulator" not in data and markdown_sections(markdown.read_text())["simulator"] == simulator_section

    overhead = data["train_overhead"]
    assert overhead["rows"] == 20_000 and overhead["rounds"] == 20
    assert overhead["ours"]["rounds_run"] == overhead["bare"]["rounds_run"] == [20] * 6, "same number of rounds"
    assert overhead["ratio_ours_to_bare"] > 0
    assert overhead["ours"]["peak_rss_mb"] > 0 and overhead["bare"]["rows_per_s"] > 0
    assert set(overhead["profile"]) == {"ours", "bare"}
    assert overhead["keras"]["epochs"] >= 1 and overhead["keras"]["fit_seconds"] > 0

    hillstrom = data["hillstrom"]
    if DATASETS.is_dir():
        assert (hillstrom["customers"], hillstrom["two_arm_rows"]) == (64_000, 42_693)
        assert hillstrom["xgboost"]["chosen"] in hillstrom["grid"]
        assert -1 < hillstrom["xgboost"]["uplift_at_30"] < 1 and -1 < hillstrom["keras"]["qini"] < 1
        assert len(hillstrom["splits"]["per_seed"]) == 2
    else:
        assert "skipped" in hillstrom

    if "scoring" in only:  # quick: one size, 5,000 customers, against the bare pyfunc pass
        (run,) = data["scoring"]["runs"]
        assert "failed" not in run, run.get("failed")
        assert run["customers"] == run["assignments"] == 5_000 and run["strategies"] >= 2
        assert run["same_predictions"], run["mean_p_convert_control"]
        assert run["peak_python_driver_mb"] > 0 and run["peak_jvm_mb"] > 0 and run["sampled_tree_peak_mb"] > 0
        assert run["scored_rows_per_s"] > 0 and run["baseline"]["pass_seconds"] > 0 and run["ratio_to_baseline"] > 0
    if "warehouse" in only:
        warehouse = data["warehouse"]
        assert warehouse["rows"] == warehouse["executemany_rows"] == 20_000, "quick: every row timed on both paths"
        assert warehouse["copy_rows_per_s"] > 0 and warehouse["ratio"] > 0 and isinstance(warehouse["goal_met"], bool)

    text = markdown.read_text()
    expected = [name for name in BENCHMARKS if name in {"dag_parse", "simulator", "ingest", *only}]
    assert [name for name in BENCHMARKS if SECTION_TITLES[name] in text] == expected
    assert "Ratio ours / bare" in text and "Keras (`KerasMultiHeadUplift.fit`" in text
    # without a results.json, a partial run keeps the other sections of the markdown as they were
    sections = markdown_sections(text)
    rebuilt = render_markdown({"machine": data["machine"], "finished_at": data["finished_at"]}, sections)
    assert markdown_sections(rebuilt) == sections


def test_bench_scoring_without_demo_state_says_to_run_make_demo(tmp_path: Path) -> None:
    with pytest.raises(DemoStateMissing, match="run `make demo` first"):
        demo_state(tmp_path / "var")
