"""``make bench``: every benchmark in one command; writes var/bench/results.json and docs/BENCHMARKS.md.

Each benchmark runs its subject in a child process (so peak memory is the child's own) and
measures a baseline in the same run, so the figures are ratios on this machine, not lone times.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.bench.datasets import bench_datasets, datasets_markdown
from tests.bench.forecast import bench_forecast, forecast_markdown
from tests.bench.recommend import bench_recommend, recommend_markdown

# the PostgreSQL cluster the warehouse benchmark creates (and drops) a database in, as the tests do
from tests.support.postgres import POSTGRES_ADMIN_URL

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("bench")
#: every benchmark, in the order they run and appear in the markdown
BENCHMARKS = (
    "dag_parse",
    "simulator",
    "ingest",
    "hillstrom",
    "datasets",
    "train_overhead",
    "scoring",
    "warehouse",
    "scaling",
    "loop",
    "forecast",
    "recommend",
    "demo",
)
#: the heading that starts each benchmark's markdown section
SECTION_TITLES = {
    "dag_parse": "## DAG parse time",
    "simulator": "## Shop simulator",
    "ingest": "## Ingest + clean of events",
    "hillstrom": "## Uplift on the Hillstrom e-mail test",
    "datasets": "## Real data sets through the product's commands",
    "train_overhead": "## Training overhead of the uplift models",
    "scoring": "## Batch scoring (`score` + `publish`)",
    "warehouse": "## Warehouse writes on PostgreSQL",
    "scaling": "## Scaling curve of the pipeline",
    "loop": "## The closed loop, night after night",
    "forecast": "## Sales forecast backtest",
    "recommend": "## Hybrid recommendations: hit-rate",
    "demo": "## `make demo`, stage by stage",
}


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    stdout: str


def run_child(args: list[str], env: dict[str, str]) -> Run:
    """Run a command; return wall time and the child's peak resident memory."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{stderr[-3000:]}")
    return Run(seconds, usage.ru_maxrss / 1024, stdout)


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def copy_floor(src: Path, dst: Path) -> float:
    """The I/O floor for an output: read every byte it wrote and write it again."""
    t0 = time.perf_counter()
    shutil.copytree(src, dst)
    os.sync()
    return time.perf_counter() - t0


def bench_simulator(customers: int, days: int, products: int, work: Path) -> dict[str, Any]:
    exe = str(Path(sys.executable).with_name("msp"))
    results: dict[str, Any] = {"customers": customers, "days": days, "products": products, "runs": []}
    sizes = sorted({max(customers // 10, 1_000), customers})
    for n in sizes:
        home = work / f"sim-{n}"
        env = {**os.environ, "MSP_HOME": str(home), "MSP_LOG_LEVEL": "WARNING"}
        log.info("simulator: %d customers x %d days", n, days)
        run = run_child([exe, "simulate", "--customers", str(n), "--days", str(days), "--products", str(products)], env)
        manifest = json.loads((home / "var/truth/manifest.json").read_text())
        rows = sum(manifest["rows_written"].values())
        size_mb = sum(p.stat().st_size for p in (home / "var").rglob("*") if p.is_file()) / 1024**2
        floor = copy_floor(home / "var", work / f"copy-{n}")
        results["runs"].append(
            {
                "customers": n,
                "seconds": round(run.seconds, 2),
                "peak_rss_mb": round(run.peak_rss_mb),
                "rows": rows,
                "rows_per_s": round(rows / run.seconds),
                "output_mb": round(size_mb, 1),
                "io_floor_seconds": round(floor, 2),
                "ratio_to_io_floor": round(run.seconds / floor, 1),
            }
        )
        shutil.rmtree(work / f"copy-{n}", ignore_errors=True)
    if len(results["runs"]) == 2:
        a, b = results["runs"]
        results["scaling_exponent"] = round(
            math.log(b["seconds"] / a["seconds"]) / math.log(b["customers"] / a["customers"]), 2
        )
    main = results["runs"][-1]
    results["goal"] = {"seconds_max": 60, "peak_rss_mb_max": 2048}
    results["goal_met"] = main["seconds"] < 60 and main["peak_rss_mb"] < 2048
    return results


def ensure_postgres(admin_url: str = POSTGRES_ADMIN_URL) -> None:
    """Make sure PostgreSQL answers at ``admin_url`` (starting the machine's cluster like the tests do), or raise."""
    from tests.support.postgres import ensure_postgres as start

    if not start(admin_url):
        raise RuntimeError(
            f"PostgreSQL does not answer at {admin_url} (and pg_ctlcluster could not start it); the warehouse "
            "benchmark needs it (`make postgres`, or set MSP_TEST_POSTGRES_URL to an admin URL)"
        )


def bench_warehouse(rows: int, admin_url: str = POSTGRES_ADMIN_URL) -> dict[str, Any]:
    """``bench_copy_vs_executemany`` in a fresh database (created here, dropped afterwards)."""
    import secrets
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    from tests.bench.warehouse import bench_copy_vs_executemany

    ensure_postgres(admin_url)
    name = f"msp_bench_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
        server = con.execute("SHOW server_version").fetchone()[0]
    parts = urlsplit(admin_url)
    try:
        log.info("warehouse: COPY + swap against executemany, %d rows", rows)
        result = bench_copy_vs_executemany(urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", "")), rows)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return {**result, "postgres_version": server}


def markdown_sections(text: str) -> dict[str, str]:
    """The benchmark sections of a BENCHMARKS.md, by benchmark name (each from its heading to the next)."""
    sections: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        if line.startswith("## "):
            name = next((n for n, title in SECTION_TITLES.items() if line.startswith(title)), None)
            if name is not None:
                sections[name] = ""
        if name is not None:
            sections[name] += line + "\n"
    return sections


def render_markdown(results: dict[str, Any], kept: dict[str, str] | None = None) -> str:
    """The whole BENCHMARKS.md; ``kept`` holds earlier sections (verbatim) of benchmarks without results."""
    kept = kept or {}
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m tests.bench.run`); do not edit by hand.",
        f"Last run: {results['finished_at']} on {m['cores']} cores, {m['cpu']}, {m['memory_gb']} GB RAM, "
        f"Python {m['python']}. Machine-readable: `var/bench/results.json`.",
        "",
        "Every figure is measured in the same run as its baseline; ratios travel between machines,",
        "absolute times do not.",
        "",
    ]
    ran = results.get("benchmarks_run", BENCHMARKS)
    if earlier := [n for n in BENCHMARKS if (n in results or n in kept) and n not in ran]:
        lines += [
            f"The last run was partial ({', '.join(ran)}): the sections of {', '.join(earlier)} keep their "
            "figures from an earlier run, possibly on another machine.",
            "",
        ]
    lines += dag_parse_markdown(results.get("dag_parse"))
    sim = results.get("simulator")
    if sim:
        main = sim["runs"][-1]
        lines += [
            "## Shop simulator (`msp simulate`)",
            "",
            f"Command: `msp simulate --customers N --days {sim['days']} --products {sim['products']}` "
            "(default dirt rates), in a child process; peak memory is that process's maximum RSS.",
            "Baseline: the I/O floor, copying the bytes the run wrote (landing zone and truth).",
            "",
            "| customers | rows written | output MB | time s | rows/s | peak RSS MB | I/O floor s | time / floor |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in sim["runs"]:
            lines.append(
                f"| {r['customers']:,} | {r['rows']:,} | {r['output_mb']} | {r['seconds']} "
                f"| {r['rows_per_s']:,} | {r['peak_rss_mb']:,} | {r['io_floor_seconds']} "
                f"| {r['ratio_to_io_floor']} |"
            )
        lines += [""]
        if "scaling_exponent" in sim:
            lines.append(f"Scaling exponent of time against customers: {sim['scaling_exponent']} (1.0 = linear).")
        verdict = "met" if sim["goal_met"] else "NOT met"
        lines += [
            f"Goal (issue 2): {main['customers']:,} customers x {sim['days']} days "
            "under 60 s and under 2 GB: "
            f"**{verdict}** ({main['seconds']} s = {main['seconds'] / 60:.2f} of the budget, "
            f"{main['peak_rss_mb']:,} MB = {main['peak_rss_mb'] / 2048:.2f} of the budget).",
            "",
        ]
    ing = results.get("ingest")
    if ing:
        verdict = "met" if ing["goal_met"] else "NOT met"
        lines += [
            "## Ingest + clean of events (Spark) against DuckDB",
            "",
            f"Data: the simulator's events, {ing['events']:,} rows in {ing['files']} daily CSV files "
            f"({ing['input_mb']} MB), dirty (default rates); customers and products loaded to silver first.",
            "Spark: `ingest` + `clean` of `jobs/pipeline` over the whole range in one job each "
            "(explicit schema, typing, validation, point-in-time foreign keys, dedupe, Parquet by ds), "
            "without the GX gate. DuckDB: the same reading, rules, foreign keys and dedupe in one SQL "
            "statement writing Parquet by ds (`tests/bench/ingest.py`).",
            "",
            "| engine | seconds | rows/s | silver rows |",
            "|---|---:|---:|---:|",
            f"| Spark local[*] (ingest {ing['spark_ingest_seconds']} s + clean {ing['spark_clean_seconds']} s) "
            f"| {ing['spark_seconds']} | {ing['spark_rows_per_s']:,} | {ing['spark_silver_rows']:,} |",
            f"| DuckDB | {ing['duckdb_seconds']} | {ing['duckdb_rows_per_s']:,} | {ing['duckdb_silver_rows']:,} |",
            "",
            "Where Spark's time goes (seconds per action; each action forces the work before it):",
            "",
            *[f"- {phase}: {sec} s" for phase, sec in ing.get("spark_profile", {}).items()],
            "",
            "DuckDB writes no bronze copy; the Spark pipeline writes bronze (raw, with load metadata) and",
            "reads it back, persists the checked rows, and writes silver and quarantine as separate jobs.",
            "",
            f"Simulator's clean count: {ing['clean_rows_expected']:,}. Ratio Spark / DuckDB: "
            f"**{ing['ratio_spark_to_duckdb']}x** (goal of issue 3: at most {ing['goal_ratio_max']}x): **{verdict}**.",
            "",
        ]
    lines += hillstrom_markdown(results.get("hillstrom"))
    lines += datasets_markdown(results.get("datasets"), SECTION_TITLES["datasets"])
    lines += train_overhead_markdown(results.get("train_overhead"))
    lines += scoring_markdown(results.get("scoring"))
    lines += warehouse_markdown(results.get("warehouse"))
    lines += scaling_markdown(results.get("scaling"))
    lines += loop_markdown(results.get("loop"))
    lines += forecast_markdown(results.get("forecast"), SECTION_TITLES["forecast"])
    lines += recommend_markdown(results.get("recommend"), SECTION_TITLES["recommend"])
    lines += demo_markdown(results.get("demo"))
    text = "\n".join(lines) + "\n"
    for name in BENCHMARKS:  # sections of benchmarks this run has no figures for, as they were
        if not results.get(name) and name in kept:
            text = _insert_section(text, name, kept[name])
    return text


def _insert_section(text: str, name: str, section: str) -> str:
    """Put ``section`` before the first section of a later benchmark (or at the end)."""
    later = [SECTION_TITLES[n] for n in BENCHMARKS[BENCHMARKS.index(name) + 1 :]]
    lines = text.splitlines(keepends=True)
    at = next((i for i, line in enumerate(lines) if any(line.startswith(t) for t in later)), len(lines))
    return "".join(lines[:at]) + section.rstrip("\n") + "\n\n" + "".join(lines[at:])


def hillstrom_markdown(hs: dict[str, Any] | None) -> list[str]:
    """The Hillstrom section (see tests/bench/models.py for the protocol)."""
    if not hs:
        return []
    title = SECTION_TITLES["hillstrom"] + " (real data)"
    if "skipped" in hs:
        return [title, "", f"Skipped: {hs['skipped']} (see `../shared/datasets/README.md`).", ""]
    xgb, keras, sp = hs["xgboost"], hs["keras"], hs["splits"]
    goal = hs["goal_uplift_at_30"]

    def verdict(model: str) -> str:
        return "met" if hs["goal_met"][model] else "NOT met"

    lines = [
        title,
        "",
        f"Command: `python -m tests.bench.run --only hillstrom` ({hs['seconds']} s). Data: `{hs['csv']}`, "
        f"{hs['customers']:,} customers, imported with `msp import campaign-log --mapping hillstrom` "
        "(`import_campaign_log`) into a temporary lake and read back from its `campaign_log` and "
        "`customer_attributes` Parquet, joined on `customer_id`.",
        "",
        f"Protocol of scikit-uplift's pipeline tutorial (`{hs['tutorial']}`): `Womens E-Mail` (treatment) "
        f"against `No E-Mail` (control), {hs['two_arm_rows']:,} rows, target `visit`; "
        f"`{hs['split']}` ({hs['train_rows']:,} train / {hs['test_rows']:,} test rows); "
        f"`{hs['metric']}` on the test half. Features: recency, history, mens, womens, newbie and one-hot "
        "history_segment, zip_code, channel (the tutorial target-encodes them with CatBoostEncoder).",
        "",
        "Models: our XGBoost T-learner (`no_action`, `email_womens`; propensity 0.5) with parameters chosen by "
        f"cross-validated uplift@30% on the train half only ({hs['cv']}; candidates in "
        "`tests/bench/models.py`, `XGB_GRID`, on top of `XGB_DEFAULTS`), and our Keras multi-head network "
        "(`KERAS_DEFAULTS`, `seq_len` 1, empty sequences; not tuned).",
        "",
        "| XGBoost candidate | CV uplift@30% (mean ± sd over folds) |",
        "|---|---:|",
        *[
            f"| {name}{' (chosen)' if name == xgb['chosen'] else ''} | {cv['mean']:.4f} ± {cv['sd']:.4f} |"
            for name, cv in xgb["cv_uplift_at_30"].items()
        ],
        "",
        "| model | uplift@30% (test half) | Qini coefficient | fit s |",
        "|---|---:|---:|---:|",
        f"| XGBoost T-learner ({xgb['chosen']}) | **{xgb['uplift_at_30']:.4f}** | {xgb['qini']:.4f} "
        f"| {xgb['fit_seconds']} |",
        f"| Keras multi-head ({keras['epochs']} epochs, best {keras['best_epoch']}) | **{keras['uplift_at_30']:.4f}** "
        f"| {keras['qini']:.4f} | {keras['fit_seconds']} |",
        f"| baseline: the tutorial (ClassTransformation + XGBClassifier), published "
        f"| {hs['published_uplift_at_30']:.4f} | | |",
        "",
        f"Goal: uplift@30% at least {goal} (published {hs['published_uplift_at_30']}): "
        f"XGBoost **{verdict('xgboost')}**, Keras **{verdict('keras')}**. One split's figure is one draw: "
        f"over the splits below, XGBoost's uplift@30% has a standard deviation of {sp['uplift_at_30']['sd']:.4f}.",
        "",
        f"Over {len(sp['seeds'])} splits (random_state {sp['seeds'][0]}..{sp['seeds'][-1]}, the same protocol "
        "including the parameter choice). Three-arm policy: all customers split 50/50 with the same seed, a "
        "T-learner on `no_action`, `email_mens`, `email_womens` (propensity 1/3, tuned by CV on the train half "
        "for its policy's IPS value) sends each test customer the arm with the highest predicted visit "
        "probability; baseline: the best single arm's IPS value on the same test half (picked on that half).",
        "",
        "| figure | mean | sd |",
        "|---|---:|---:|",
        f"| XGBoost uplift@30% | {sp['uplift_at_30']['mean']:.4f} | {sp['uplift_at_30']['sd']:.4f} |",
        f"| XGBoost Qini coefficient | {sp['qini']['mean']:.4f} | {sp['qini']['sd']:.4f} |",
        f"| policy IPS value (visit rate) | {sp['policy_ips']['mean']:.4f} | {sp['policy_ips']['sd']:.4f} |",
        f"| best single arm IPS value | {sp['best_arm_ips']['mean']:.4f} | {sp['best_arm_ips']['sd']:.4f} |",
        f"| policy − best single arm | **{sp['difference']['mean']:+.4f}** | {sp['difference']['sd']:.4f} |",
        "",
        f"The policy beat the best single arm on {sp['policy_beats_best_arm']} of {len(sp['seeds'])} splits.",
        "",
        "| seed | chosen (2 arms) | uplift@30% | Qini | chosen (3 arms) | policy IPS | best arm | best arm IPS "
        "| difference | policy's arms (none / mens / womens) |",
        "|---:|---|---:|---:|---|---:|---|---:|---:|---|",
    ]
    for r in sp["per_seed"]:
        share = " / ".join(f"{v:.0%}" for v in r["policy_share"].values())
        lines.append(
            f"| {r['seed']} | {r['chosen']} | {r['uplift_at_30']:.4f} | {r['qini']:.4f} | {r['policy_chosen']} "
            f"| {r['policy_ips']:.4f} | {r['best_arm']} | {r['best_arm_ips']:.4f} | {r['difference']:+.4f} | {share} |"
        )
    return [*lines, ""]


def train_overhead_markdown(to: dict[str, Any] | None) -> list[str]:
    """The training-overhead section: our T-learner against bare xgboost.train, and the Keras fit time."""
    if not to:
        return []
    ours, bare, k = to["ours"], to["bare"], to["keras"]
    verdict = "met" if to["goal_met"] else "NOT met"
    same = "yes" if to["same_predictions"] else "NO"
    return [
        SECTION_TITLES["train_overhead"],
        "",
        f"Command: `python -m tests.bench.run --only train_overhead`. Data: synthetic (`tests/bench/models.py`, "
        f"`synthetic_uplift`), {to['rows']:,} rows x {to['features']} float features, {to['strategies']} strategies "
        "assigned uniformly (propensity 0.2), binary conversion with heterogeneous effects.",
        "",
        f"Subject: `XGBUpliftTLearner.fit` ({to['boosters']} boosters: the shared base, then one correction per "
        f"strategy on its rows from the base margin; {to['rounds']} rounds each, early stopping never triggers; "
        "inverse-propensity weights, a stratified 20% validation split evaluated every round). Baseline: bare "
        "`xgboost.train` with the model's `booster_params()` (and its correction overrides) training the same "
        "boosters on the same rows from numpy arrays, base margin passed, no evaluation sets. Same trees "
        f"(first 200 rows' predictions equal within 1e-5): **{same}**. Each side in its own child process, "
        f"interleaved, {to['repetitions']} repetitions; figures are medians of the fit time.",
        "",
        "| side | fit s (median) | fit s per repetition | rows/s | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
        f"| ours (`XGBUpliftTLearner.fit`) | {ours['median_seconds']} | {', '.join(map(str, ours['fit_seconds']))} "
        f"| {ours['rows_per_s']:,} | {ours['peak_rss_mb']:,} |",
        f"| bare `xgboost.train` | {bare['median_seconds']} | {', '.join(map(str, bare['fit_seconds']))} "
        f"| {bare['rows_per_s']:,} | {bare['peak_rss_mb']:,} |",
        "",
        f"Ratio ours / bare (median fit time over median fit time): **{to['ratio_ours_to_bare']}x** "
        f"(goal: at most {to['goal_ratio_max']}x): **{verdict}**. Per repetition: "
        f"{', '.join(f'{r}x' for r in to['paired_ratios'])}; CPU time, which other load on the machine "
        f"stretches less ({to['threads']} XGBoost thread on each side): {to['cpu_ratio_ours_to_bare']}x "
        f"({ours['median_cpu_seconds']} s against {bare['median_cpu_seconds']} s).",
        "",
        "Where the fit's time goes (one more run of each side under cProfile, seconds):",
        "",
        "| phase | ours | bare |",
        "|---|---:|---:|",
        *[
            f"| {phase} | {to['profile']['ours'][phase]} | {to['profile']['bare'][phase]} |"
            for phase in to["profile"]["ours"]
            if phase != "fit_seconds"
        ],
        f"| whole fit (under cProfile) | {to['profile']['ours']['fit_seconds']} "
        f"| {to['profile']['bare']['fit_seconds']} |",
        "",
        f"Keras (`KerasMultiHeadUplift.fit`, `KERAS_DEFAULTS`): {k['rows']:,} rows x {k['features']} features, "
        f"sequences of up to {k['seq_len']} tokens, {to['strategies']} strategies: {k['fit_seconds']} s for "
        f"{k['epochs']} epochs (early stopping, at most {k['max_epochs']}; {k['seconds_per_epoch']} s per epoch), "
        f"peak RSS {k['peak_rss_mb']:,} MB. Goal: under {k['goal_seconds_max']:.0f} s on CPU: "
        f"**{'met' if k['goal_met'] else 'NOT met'}**.",
        "",
    ]


def scoring_markdown(sc: dict[str, Any] | None) -> list[str]:
    """The batch scoring section (see tests/bench/scoring.py for the protocol)."""
    if not sc:
        return []
    goal_mb = sc["goal"]["peak_driver_mb_max"]
    runs = sc["runs"]
    done = [r for r in runs if "failed" not in r]
    k = done[0]["strategies"] if done else "the catalogue's"
    lines = [
        SECTION_TITLES["scoring"],
        "",
        f"Command: `python -m tests.bench.run --only scoring` (`tests/bench/scoring.py`). Data: the demo's "
        f"`gold/features/ds={sc['ds']}` ({sc['source_customers']:,} customers; needs `make demo`) replicated to "
        "N customers with new ids, so every feature keeps its distribution; the demo's served model "
        f"`{sc.get('model', 'msp_uplift')}@champion`; the shipped strategy catalogue ({k} strategies, "
        "its budget per customer scored). "
        f"Recommendations read the demo's silver events: at most {sc['source_customers']:,} customers have a "
        "history there, the others get the popular-products fallback.",
        "",
        f"Subject: `score` + `publish` (DuckDB warehouse) in a child process, Spark `{sc['spark_master']}`, "
        f"`spark.driver.memory` {sc['driver_memory']} (`MSP_SCORING_DRIVER_MEMORY`, as the score task). "
        "Peak driver memory: VmHWM of the Python driver plus "
        "VmHWM of its JVM, read at the end of the run; PySpark's Python workers (the model's UDF) apart; and the "
        f"resident set of the whole process tree at once, sampled every {sc['sample_seconds']} s. Baseline: the "
        "same model through `mlflow.pyfunc.load_model` over the same rows in one process, in chunks of "
        f"{sc['baseline_chunk']:,} (pyarrow read, `FeatureSpec.flatten`, predict): no Spark, optimiser or writes. "
        "Scored rows/s: customers x strategies over the time of `score`; assignment rows/s: rows written by "
        "`publish` over its time; ratio: score + publish over the baseline's pass.",
        "",
        "| customers | score s | publish s | score + publish s | scored rows/s | assignment rows/s | baseline s "
        "| ratio | CPU s (subject / baseline) | other processes' CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        if "failed" in r:
            reason = r["failed"].splitlines()[0].replace("|", "/")
            lines.append(f"| {r['customers']:,} | **failed**: {reason} | | | | | | | | |")
            continue
        b = r["baseline"]
        lines.append(
            f"| {r['customers']:,} | {r['score_seconds']} | {r['publish_seconds']} | {r['total_seconds']} "
            f"| {r['scored_rows_per_s']:,} | {r['assignment_rows_per_s']:,} | {b['pass_seconds']} "
            f"| {r['ratio_to_baseline']}x | {r['cpu_seconds']} / {b['cpu_seconds']} "
            f"| {r['other_cpu_seconds']} s ({r['other_cpu_share']:.0%}) |"
        )
    lines += [
        "",
        "CPU s: user + system seconds of the whole child process tree (Spark start and imports included; the "
        "baseline's with its model load). Other processes' CPU: what the rest of the machine used while the "
        f"subject ran (share of its {sc.get('cores', '?')} cores over that time; such work stretches the wall times).",
        "",
        "| customers | driver peak MB (Python + JVM) | peak by the end of `score` | Python driver | JVM "
        "| Python workers alive at the end | sampled whole tree MB | baseline peak MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in done:
        lines.append(
            f"| {r['customers']:,} | **{r['peak_driver_mb']:,}** | {r['peak_driver_mb_after_score']:,} "
            f"| {r['peak_python_driver_mb']:,} (by the end of score {r['peak_python_driver_mb_after_score']:,}) "
            f"| {r['peak_jvm_mb']:,} | {r['peak_python_workers_mb']:,} | {r['sampled_tree_peak_mb']:,} "
            f"| {r['baseline']['peak_rss_mb']:,} |"
        )
    if done:
        strategies = list(done[0]["mix"])
        lines += [
            "",
            "Assignments per strategy (the budget scales with the customers scored, so the mix keeps its shares; "
            "the number of customers the recommendation job serves grows with the size):",
            "",
            "| customers | " + " | ".join(strategies) + " | spent / budget |",
            "|---:|" + "---:|" * (len(strategies) + 1),
            *[
                f"| {r['customers']:,} | "
                + " | ".join(f"{r['mix'].get(s, 0):,}" for s in strategies)
                + f" | {r['spent']:,.0f} / {r['budget']:,.0f} |"
                for r in done
            ],
        ]
    lines.append("")
    if se := sc.get("scaling_exponent"):
        lines += [
            f"Scaling exponent of score + publish time against customers, {se['from']:,} -> {se['to']:,}: "
            f"{se['total']} (baseline: {se['baseline']}; 1.0 = linear). The sizes are not the same work scaled: "
            "the recommendation job's work follows the number of `email_recommendations` customers (table "
            "above), and the 10,000-customer figures are mostly fixed costs.",
            "",
        ]
    if done:
        lines += [
            "Where the time goes (seconds; the Spark session's start is not part of `score`):",
            "",
            "| phase | " + " | ".join(f"{r['customers']:,}" for r in done) + " |",
            "|---|" + "---:|" * len(done),
            "| Spark session start | " + " | ".join(str(r["spark_start_seconds"]) for r in done) + " |",
            *[
                f"| {phase} | " + " | ".join(str(r["phases"][phase]) for r in done) + " |"
                for phase in done[0]["phases"]
            ],
            "| baseline: read + flatten | "
            + " | ".join(str(r["baseline"]["read_flatten_seconds"]) for r in done)
            + " |",
            "| baseline: predict | " + " | ".join(str(r["baseline"]["predict_seconds"]) for r in done) + " |",
            "",
            "Same predictions (mean `p_convert` of the control in the subject's assignments equals the "
            f"baseline's): **{'yes' if all(r['same_predictions'] for r in done) else 'NO'}**.",
            "",
        ]
    largest = runs[-1]
    if "failed" in largest:
        detail = f"the run at {largest['customers']:,} customers failed"
    else:
        detail = (
            f"{largest['peak_driver_mb']:,} MB at {largest['customers']:,} customers = "
            f"{largest['peak_driver_mb'] / goal_mb:.2f} of the budget"
        )
    lines += [
        f"Goal (issue 5): peak driver memory at {sc['sizes'][-1]:,} customers under {goal_mb:,} MB "
        f"(no full collect to the driver): **{'met' if sc['goal_met'] else 'NOT met'}** ({detail}).",
        "",
    ]
    return lines


def dag_parse_markdown(dp: dict[str, Any] | None) -> list[str]:
    """The DAG parse section: every DAG file against Airflow's tutorial DAG, loaded as the DAG processor does."""
    if not dp:
        return []
    verdict = "met" if dp["goal_met"] else "NOT met"
    return [
        SECTION_TITLES["dag_parse"],
        "",
        f"Command: `python -m tests.bench.run --only dag_parse` (`tests/bench/dags.py`). Each file is loaded by "
        f"`DagBag(dag_folder=file)` in a fresh interpreter that has already imported Airflow (as the DAG processor "
        f"has); median of {dp['repeats']} processes. Baseline: Airflow's own `{dp['reference']}`, measured the "
        f"same way in the same run: {dp['reference_median_s']} s.",
        "",
        "| DAG file | median s | max s | median / baseline |",
        "|---|---:|---:|---:|",
        *[f"| `{r['file']}` | {r['median_s']} | {r['max_s']} | {r['ratio_to_reference']} |" for r in dp["files"]],
        "",
        f"Goal (issue 8): every file under {dp['goal']['seconds_max']} s: **{verdict}**.",
        "",
    ]


def warehouse_markdown(wh: dict[str, Any] | None) -> list[str]:
    """The warehouse write section: ``Warehouse.replace`` (COPY + swap) against executemany on PostgreSQL."""
    if not wh:
        return []
    goal = wh["goal"]
    rate_met = wh["copy_rows_per_s"] >= goal["copy_rows_per_s_min"]
    ratio_met = wh["ratio"] >= goal["ratio_min"]

    def verdict(met: bool) -> str:
        return "met" if met else "NOT met"

    return [
        SECTION_TITLES["warehouse"],
        "",
        f"Command: `python -m tests.bench.run --only warehouse` (`tests/bench/warehouse.py`, "
        f"`bench_copy_vs_executemany`) against a fresh database on PostgreSQL {wh.get('postgres_version', '')}. "
        f"Data: {wh['rows']:,} synthetic `strategy_assignments` rows of one run date.",
        "",
        "Subject: `Warehouse.replace` (one transaction: binary COPY into a new table, primary key, then swapped in "
        "as the run date's partition), first write and rerun of the same date. Baseline: psycopg 3's `executemany` "
        f"INSERT into the same table ({wh['note']}). Reference: the same binary COPY into a table without index "
        "(what moving the bytes alone costs).",
        "",
        "| path | rows | seconds | rows/s |",
        "|---|---:|---:|---:|",
        f"| `Warehouse.replace`, first write | {wh['rows']:,} | {wh['copy_seconds']} | {wh['copy_rows_per_s']:,} |",
        f"| `Warehouse.replace`, rerun | {wh['rows']:,} | {wh['copy_rerun_seconds']} "
        f"| {wh['copy_rerun_rows_per_s']:,} |",
        f"| executemany INSERT | {wh['executemany_rows']:,} | {wh['executemany_seconds']} "
        f"| {wh['executemany_rows_per_s']:,} |",
        f"| bare COPY, no index, no swap | {wh['rows']:,} | {wh['bare_copy_seconds']} "
        f"| {wh['bare_copy_rows_per_s']:,} |",
        "",
        f"Ratio COPY path / executemany: **{wh['ratio']}x**.",
        f"Goals: COPY path at least {goal['copy_rows_per_s_min']:,} rows/s: **{verdict(rate_met)}**; at least "
        f"{goal['ratio_min']}x executemany: **{verdict(ratio_met)}**; both: **{verdict(wh['goal_met'])}**.",
        "",
    ]


def scaling_markdown(sc: dict[str, Any] | None) -> list[str]:
    """The per-stage scaling curve and the simulator's decision-quality figures at each size."""
    if not sc:
        return []
    from tests.bench.scaling import STAGES, stage_exponent

    sizes = [r["customers"] for r in sc["runs"]]
    head = " | ".join(f"{n:,} s" for n in sizes)
    lines = [
        SECTION_TITLES["scaling"],
        "",
        "Command: `python -m tests.bench.run --only scaling` (`tests/bench/scaling.py`). Each size is a fresh "
        f"shop of {sc['days']} days and {sc['products']:,} products, run stage by stage through the `msp` "
        "command line in child processes (DuckDB warehouse, MLflow on SQLite, Spark `local[*]`). Peak memory: the "
        "largest summed resident memory of the stage's process tree, Spark's JVM included.",
        "",
        "Baseline: linear scaling (exponent 1.0). The exponent between two sizes is log(time ratio) / log(size "
        "ratio); below 1 means fixed costs (JVM start, model compilation, the tuning time budget) still weigh.",
        "",
        f"| stage | {head} | "
        + " | ".join(f"{n:,} peak MB" for n in sizes)
        + " | "
        + " | ".join(f"exponent {e['from']:,}->{e['to']:,}" for e in sc["exponents"])
        + " |",
        "|---|" + "---:|" * (2 * len(sizes) + len(sc["exponents"])),
    ]
    for stage in (*STAGES, "total"):
        times = [r["stages"][stage]["seconds"] if stage != "total" else r["seconds"] for r in sc["runs"]]
        peaks = [r["stages"][stage]["peak_mb"] if stage != "total" else r["peak_mb"] for r in sc["runs"]]
        exps = [e[stage] for e in sc["exponents"]]
        name = f"**{stage}**" if stage == "total" else f"`{stage}`"
        lines.append(
            f"| {name} | "
            + " | ".join(f"{t:,}" for t in times)
            + " | "
            + " | ".join(f"{p:,}" for p in peaks)
            + " | "
            + " | ".join(str(x) for x in exps)
            + " |"
        )
    goal = sc["goal"]
    lines.append("")
    if failed := sc.get("failed"):
        lines += [
            f"**Failed**: stage `{failed['stage']}` at {failed['customers']:,} customers (larger sizes not run):",
            "",
            "```",
            *failed["error"].strip().splitlines()[-8:],
            "```",
            "",
        ]
        if (done := failed.get("stages")) and sc["runs"]:
            prev, part = sc["runs"][-1], {"customers": failed["customers"], "stages": done}
            measured = "; ".join(
                f"`{stage}` {v['seconds']:,} s, peak {v['peak_mb']:,} MB "
                f"(exponent from {prev['customers']:,}: {stage_exponent(prev, part, stage)})"
                for stage, v in done.items()
            )
            lines += [f"Measured at {failed['customers']:,} customers before the failure: {measured}.", ""]
    if stopped := sc.get("stopped_before"):
        lines += [
            f"**Stopped** after {sizes[-1]:,} customers: {', '.join(f'{n:,}' for n in stopped)} not run "
            "(published from the partial file with `--scaling-stopped`).",
            "",
        ]
    if sc["exponents"] and failed:
        lines.append(
            f"Goal (issue 8): every stage's exponent at most {goal['exponent_max']} up to the largest size: "
            f"**NOT met** (the run at {failed['customers']:,} customers failed; the exponents above stop at "
            f"{goal['to']:,})."
        )
    elif sc["exponents"] and stopped:
        lines.append(
            f"Goal (issue 8): every stage's exponent at most {goal['exponent_max']} up to the largest size: "
            f"**not measured** (the exponents above stop at {goal['to']:,})."
        )
    elif sc["exponents"]:
        lines.append(
            f"Goal (issue 8): every stage's exponent at most {goal['exponent_max']} from {goal['from']:,} to "
            f"{goal['to']:,} customers: **{'met' if sc['goal_met'] else 'NOT met'}**."
        )
    else:
        lines.append(f"Goal (issue 8): every stage's exponent at most {goal['exponent_max']}: **not measured**.")
    lines += ["", *decision_quality_markdown([(f"{r['customers']:,}", r["decision_quality"]) for r in sc["runs"]])]
    return lines


#: issue 19's goals for the night's policy at every size
QUALITY_GOALS = {"ratio_to_oracle": 0.65, "ratio_to_best_single": 1.5, "ratio_to_feature_ceiling": 0.9}


def decision_quality_markdown(rows: list[tuple[str, dict[str, Any]]], label: str = "customers") -> list[str]:
    """The decision-quality table (policy against the oracle, the best single strategy, the feature ceiling)."""
    lines = [
        "Decision quality on the simulator (the scored night answered by the simulator, valued against its "
        "truth, `tests/support/policy_truth.py`): true incremental profit of the platform's assignments "
        "(holdout and exploration included), of the budget-constrained oracle, of the best single strategy "
        "given to eligible customers within the same budget, and of the feature ceiling (the true profit "
        "regressed on the scoring features without noise, then optimised: as chosen, and through the "
        "night's holdout and exploration).",
        "",
        f"| {label} | policy | oracle | policy / oracle | best single | policy / best single "
        "| ceiling / oracle | policy / ceiling | policy / randomised ceiling |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(q: dict[str, Any], key: str, fmt: str = ",.0f") -> str:
        return format(q[key], fmt) if isinstance(q.get(key), (int, float)) else "-"

    for name, q in rows:
        lines.append(
            f"| {name} | {cell(q, 'policy')} | {cell(q, 'oracle')} | {cell(q, 'ratio_to_oracle', '.3f')} "
            f"| {cell(q, 'best_single')} ({q.get('best_single_strategy', '-')}) "
            f"| {cell(q, 'ratio_to_best_single', '.2f')} | {cell(q, 'feature_ceiling_to_oracle', '.3f')} "
            f"| {cell(q, 'ratio_to_feature_ceiling', '.3f')} "
            f"| {cell(q, 'ratio_to_randomised_feature_ceiling', '.3f')} |"
        )
    if any("deterministic_to_oracle" in q for _, q in rows):
        lines += [
            "",
            "Where the loss is: the optimiser run without holdout or exploration on the served model's "
            "predictions (deterministic), on its conversion probabilities with the true order values, and on the "
            "true conversion probabilities with its order values (expected revenue over conversion); each as a "
            "share of the oracle. The part whose share stays low is where the model loses.",
            "",
            f"| {label} | deterministic / oracle | model conversion, true order value | true conversion, model "
            "order value |",
            "|---:|---:|---:|---:|",
        ]
        for name, q in rows:
            lines.append(
                f"| {name} | {cell(q, 'deterministic_to_oracle', '.3f')} "
                f"| {cell(q, 'model_conversion_true_order_value_to_oracle', '.3f')} "
                f"| {cell(q, 'true_conversion_model_order_value_to_oracle', '.3f')} |"
            )
    verdicts = []
    for key, goal in QUALITY_GOALS.items():
        values = [q.get(key) for _, q in rows]
        met = all(isinstance(v, (int, float)) and v >= goal for v in values)
        shown = ", ".join(format(v, ".3f") if isinstance(v, (int, float)) else "-" for v in values)
        verdicts.append(
            f"{key.replace('ratio_to_', 'policy / ').replace('_', ' ')} at least {goal} ({shown}): "
            f"**{'met' if met else 'NOT met'}**"
        )
    lines += ["", "Goals (issue 19), at every size: " + "; ".join(verdicts) + ".", ""]
    return lines


def loop_markdown(lp: dict[str, Any] | None) -> list[str]:
    """The closed loop's curve: decision quality per night as the platform's own logs accumulate."""
    if not lp:
        return []
    lines = [
        SECTION_TITLES["loop"],
        "",
        "Command: `python -m tests.bench.run --only loop` (`tests/bench/loop.py`). One shop of "
        f"{lp['customers']:,} customers and {lp['products']:,} products, simulated for {lp['simulated_days']} days "
        f"so that each night has organic history; the platform starts on day {lp['history_days']}: ingest, "
        "features, training (three families, promotion), scoring. Then one night per attribution window "
        f"({lp['attribution_days']} days): the simulator answers the previous night, the days since are ingested, "
        "the models retrain on the designed campaigns and the platform's own nights so far, the night is "
        f"scored. {lp['seconds']:,} s in all.",
        "",
        "| night | training rows (designed / the platform's own) | serves | policy / oracle | policy / best single "
        "| policy / randomised ceiling | seconds (ingest, features, train, score) |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for night in lp["nights"]:
        q, t, s = night["quality"], night["training_rows"], night["seconds"]
        lines.append(
            f"| {night['ds']} | {t['designed']:,} / {t['platform']:,} | {night['served']['source']} "
            f"| {q['ratio_to_oracle']:.3f} | {q.get('ratio_to_best_single', float('nan')):.2f} "
            f"| {q.get('ratio_to_randomised_feature_ceiling', float('nan')):.3f} "
            f"| {s.get('ingest_clean', s.get('ingest'))}, {s['features']}, {s['train']}, {s['score']} |"
        )
    lines += [
        "",
        f"Policy / oracle per night: {', '.join(format(r, '.3f') for r in lp['ratio_to_oracle'])}. Goal (issue 19): "
        "it must not fall (by more than 0.02 from one night to the next): "
        f"**{'met' if lp['never_falls'] else 'NOT met'}**; "
        f"it should rise: **{'it rose' if lp['rises'] else 'it did not rise'}**.",
        "",
    ]
    return lines


def _dag_parse(quick: bool) -> dict[str, Any]:
    from tests.bench.dags import bench_dag_parse

    return bench_dag_parse(repeats=1 if quick else 5)


def _ingest(work: Path, quick: bool) -> dict[str, Any]:
    from tests.bench.ingest import bench_ingest

    return bench_ingest(work, *((3_000, 10) if quick else (250_000, 90)))


def _models(name: str, work: Path, quick: bool) -> dict[str, Any]:
    from tests.bench import models

    return getattr(models, name)(work, quick=quick)


def _scoring(work: Path, quick: bool) -> dict[str, Any]:
    from tests.bench.scoring import bench_scoring

    return bench_scoring(work, quick=quick)


def _scaling(work: Path, quick: bool, partial: Path, stopped: bool = False) -> dict[str, Any]:
    from tests.bench.scaling import bench_scaling, from_partial

    if stopped:  # a run stopped after a size: publish what it measured, say what it did not
        return from_partial(partial)
    return bench_scaling(work, quick=quick, partial=partial)


def _loop(work: Path, quick: bool) -> dict[str, Any]:
    from tests.bench.loop import bench_loop

    return bench_loop(work, quick=quick)


def _demo(work: Path) -> dict[str, Any]:
    from tests.bench.demo import bench_demo

    return bench_demo(work)


def demo_markdown(dm: dict[str, Any] | None) -> list[str]:
    """The demo section: ``msp demo`` in a fresh home, its stage times, against the absolute goal."""
    if not dm:
        return []
    goal = dm["goal"]
    verdict = "met" if dm["goal_met"] else "NOT met"
    return [
        SECTION_TITLES["demo"],
        "",
        "Command: `python -m tests.bench.run --only demo` (`tests/bench/demo.py`): `msp demo` (what `make demo` "
        "runs after the install) in a child process with a fresh `MSP_HOME`. The goal is absolute (a ground rule, "
        "not a ratio): there is no baseline to run beside it; the ratio is to the goal.",
        "",
        "| stage | seconds |",
        "|---|---:|",
        *[f"| {name} | {seconds} |" for name, seconds in dm["stages"].items()],
        f"| **total (wall, child process)** | **{dm['seconds']}** |",
        "",
        f"Goal (issue 20): at most {goal['seconds_max']:.0f} s after the install (ground rule: "
        f"{goal['rule_seconds_max']:.0f} s): **{verdict}** ({dm['ratio_to_goal']} of the goal; peak RSS of "
        f"the demo's own process {dm['peak_rss_mb']:,} MB, its Airflow and Spark children not included).",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness, not the figures")
    parser.add_argument("--results", type=Path, default=ROOT / "var/bench/results.json")
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs/BENCHMARKS.md")
    parser.add_argument("--only", help=f"comma-separated benchmarks to run ({', '.join(BENCHMARKS)}); default all")
    parser.add_argument(
        "--scaling-stopped",
        action="store_true",
        help="publish the scaling figures of a stopped run (var/bench/scaling-partial.json) instead of running it",
    )
    args = parser.parse_args(argv)
    only = {name.strip() for name in args.only.split(",") if name.strip()} if args.only else set(BENCHMARKS)
    if unknown := sorted(only - set(BENCHMARKS)):
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench: %(message)s", datefmt="%H:%M:%S")
    try:  # what the scoring and warehouse benchmarks need, checked before anything runs
        if "scoring" in only:
            from tests.bench.scoring import demo_state

            demo_state(ROOT / "var")
        if "warehouse" in only:
            ensure_postgres()
    except RuntimeError as exc:
        parser.error(str(exc))
    customers, days, products = (2_000, 10, 100) if args.quick else (100_000, 90, 2_000)
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    kept: dict[str, str] = {}
    if args.only and args.results.exists():  # a partial run keeps the other benchmarks' last figures
        previous = json.loads(args.results.read_text())
        results.update({k: v for k, v in previous.items() if k in BENCHMARKS and k not in only})
    if args.only and args.markdown.exists():  # and the sections of those results.json does not hold
        sections = markdown_sections(args.markdown.read_text())
        kept = {k: v for k, v in sections.items() if k not in only and k not in results}

    def save(done: list[str]) -> None:
        """Write results.json and BENCHMARKS.md with what has run so far (a later failure keeps them)."""
        results["benchmarks_run"] = done
        results["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(results, indent=2) + "\n")
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(render_markdown(results, {k: v for k, v in kept.items() if k not in results}))

    with tempfile.TemporaryDirectory(prefix="msp-bench-") as tmp:
        work = Path(tmp)
        runners: dict[str, Any] = {
            "dag_parse": lambda: _dag_parse(args.quick),
            "simulator": lambda: bench_simulator(customers, days, products, work),
            "ingest": lambda: _ingest(work, args.quick),
            "hillstrom": lambda: _models("bench_hillstrom", work, args.quick),
            "datasets": lambda: bench_datasets(work, args.quick),
            "train_overhead": lambda: _models("bench_train_overhead", work, args.quick),
            "scoring": lambda: _scoring(work, args.quick),
            "warehouse": lambda: bench_warehouse(20_000 if args.quick else 1_000_000),
            "scaling": lambda: _scaling(
                work, args.quick, args.results.with_name("scaling-partial.json"), args.scaling_stopped
            ),
            "loop": lambda: _loop(work, args.quick),
            "forecast": lambda: bench_forecast(work, args.quick),
            "recommend": lambda: bench_recommend(work, args.quick),
            "demo": lambda: _demo(work),
        }
        done: list[str] = []
        for name in BENCHMARKS:
            if name in only:
                results[name] = runners[name]()
                done.append(name)
                save(done)
    log.info("wrote %s and %s", args.results, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
