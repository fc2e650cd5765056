"""Nightly batch scoring at scale: ``score`` + ``publish`` of jobs/scoring against a bare pandas pass of the model.

Setup (not timed): a work ``MSP_HOME`` with the demo's trained champion. The demo state of the checkout
(``var/``, written by ``make demo``) must exist; the benchmark does not build it and fails with a message
saying to run ``make demo`` first. Into the work home go copies of ``var/mlflow`` (the MLflow store: the
registry with ``msp_uplift_xgboost@champion``; the absolute artifact paths in its SQLite rows and
``MLmodel`` files are rewritten to the copy, because loading a ``models:/`` URI from a local store writes
into the model's folder) and ``var/lake/silver`` (the recommendations read silver events, orders and
products); nothing under the checkout's ``var/`` is written. ``gold/features/ds=2026-10-30`` is
synthetic: the demo's feature rows of that date (about 20,000 customers) replicated to N customers with
new customer ids (copy 0 keeps the demo's ids, copy k is ``R<k>-<id>``), so every feature keeps its
distribution; below the demo's size a seeded random sample. Recommendations therefore find the history of at most the
demo's 20,000 customers in silver; the others get the fallback (the most popular active products).

Subject: one child process (``python -m tests.bench.scoring --side subject``) with ``MSP_HOME`` = the
work home runs ``get_spark``, ``score`` and ``publish`` (the default DuckDB warehouse in the work home),
``spark.driver.memory`` = the platform's ``scoring_driver_memory`` setting (``MSP_SCORING_DRIVER_MEMORY``),
as the DAG's score and publish tasks use it; the value is recorded. Wall time per phase:
Spark start, score's own phases (predict, optimise, write_lake), and publish split into reading the
assignments back, the forecast and the two warehouse writes (timing wrappers around
``jobs.scoring.forecast.forecast``, ``Warehouse.replace`` and score's ``write_partitions``, installed in
the child only). CPU seconds of the child's whole process tree, and of the rest of the machine while it
ran (from /proc/stat), say how much other work stretched the wall times. Peak memory
of the whole driver: at the end, before ``spark.stop()``, the child reads the VmHWM (peak resident set
since exec) of itself and of every process below it: the JVM (``java``) and PySpark's Python workers
(which run the model's UDF). The goal compares the Python driver + JVM sum against 3 GB; while the child
runs, the parent also samples the resident set of the whole process tree (driver, JVM and workers at the
same moment) every :data:`SAMPLE_SECONDS`.

Baseline, in the same run and on the same rows: another child process loads the champion once with
``mlflow.pyfunc.load_model`` and predicts the features in chunks of :data:`BASELINE_CHUNK` rows (read
with pyarrow, flattened with the model's own ``FeatureSpec.flatten``): no Spark, no optimiser, no writes.
Its mean ``p_convert`` of the control must equal the subject's (same model, same rows). The ratio
subject / baseline is what Spark, the optimiser, recommendations and the writes add.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parents[2]
DS = "2026-10-30"
SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (5_000,)
GOAL_PEAK_MB = 3 * 1024
BASELINE_CHUNK = 100_000
#: rows per Parquet file of the synthetic features (Spark reads one task per file at these sizes)
FILE_ROWS = 125_000
SAMPLE_SECONDS = 0.25
SEED = 0


class DemoStateMissing(RuntimeError):
    """The checkout has no demo state (trained champion, features, silver) to benchmark with."""


# ---------------------------------------------------------------------------------------------
# setup (not timed)
# ---------------------------------------------------------------------------------------------


def demo_state(var: Path) -> dict[str, Path]:
    """The demo's paths the benchmark reads, or DemoStateMissing saying to run ``make demo`` first."""
    paths = {
        "mlflow": var / "mlflow",
        "features": var / "lake" / "gold" / "features" / f"ds={DS}",
        "silver": var / "lake" / "silver",
    }
    missing = [str(p) for p in paths.values() if not p.is_dir()]
    missing += [
        str(var / "lake/silver" / t) for t in ("events", "orders", "products") if not (paths["silver"] / t).is_dir()
    ]
    db = paths["mlflow"] / "mlflow.db"
    if not missing and not _has_champion(db):
        missing.append(f"{db} (no registered model with alias champion)")
    if missing:
        raise DemoStateMissing(
            f"the scoring benchmark needs the demo state in {var}, missing: {', '.join(missing)}; "
            "run `make demo` first (it simulates a shop, ingests, trains and registers the champion)"
        )
    return paths


def _has_champion(db: Path) -> bool:
    if not db.is_file():
        return False
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return bool(con.execute("SELECT count(*) FROM registered_model_aliases WHERE alias = 'champion'").fetchone()[0])
    except sqlite3.Error:
        return False
    finally:
        con.close()


def prepare_home(home: Path, state: dict[str, Path]) -> None:
    """A work MSP_HOME with copies of the demo's MLflow store and silver tables (the demo state is only read).

    The copied store is relocated (:func:`relocate_mlflow`): loading ``models:/...`` from a local artifact
    store writes a ``registered_model_meta`` file into the model's folder in place, so the store's
    absolute artifact paths must point into the copy.
    """
    (home / "var" / "lake").mkdir(parents=True, exist_ok=True)
    shutil.copytree(state["mlflow"], home / "var" / "mlflow", dirs_exist_ok=True)
    relocate_mlflow(home / "var" / "mlflow", state["mlflow"].resolve())
    shutil.copytree(state["silver"], home / "var" / "lake" / "silver", dirs_exist_ok=True)


def relocate_mlflow(store: Path, original: Path) -> None:
    """Point a copied MLflow store (``mlflow.db`` + ``artifacts/``) at itself: ``original`` -> ``store`` everywhere.

    Every text column of the SQLite store and every ``MLmodel`` file of the copied artifacts; no reference
    to ``original`` may remain in the store afterwards.
    """
    old, new = str(original), str(store.resolve())
    con = sqlite3.connect(store / "mlflow.db")
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in (
                r[1]
                for r in con.execute(f'PRAGMA table_info("{table}")')
                if r[2].upper() in ("TEXT", "") or "CHAR" in r[2].upper()
            ):
                con.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) WHERE instr("{column}", ?) > 0',
                    (old, new, old),
                )
        con.commit()
        left = [
            f"{table}.{column}"
            for table in tables
            for column in (r[1] for r in con.execute(f'PRAGMA table_info("{table}")'))
            if con.execute(
                f'SELECT count(*) FROM "{table}" WHERE instr(CAST("{column}" AS TEXT), ?) > 0', (old,)
            ).fetchone()[0]
        ]
    finally:
        con.close()
    if left:
        raise RuntimeError(f"the copied MLflow store still refers to {old} in {', '.join(left)}")
    for mlmodel in (store / "artifacts").rglob("MLmodel"):
        text = mlmodel.read_text()
        if old in text:
            mlmodel.write_text(text.replace(old, new))


def reset_outputs(home: Path) -> None:
    """Remove what a previous size wrote (assignments, warehouse, Spark's scratch), so each size starts alike."""
    for path in (home / "var/lake/gold/assignments", home / "var/lake/_spark_warehouse"):
        shutil.rmtree(path, ignore_errors=True)
    for path in home.glob("var/warehouse.duckdb*"):
        path.unlink()


def synthetic_features(source: Path, customers: int, out: Path, seed: int = SEED) -> dict[str, Any]:
    """Write ``customers`` feature rows to ``out`` (Parquet), replicating the rows of ``source``.

    Whole copies of the source rows, then a seeded random sample of them for the remainder (or for all
    of it below the source's size); copy 0 keeps the source's customer ids, copy k is ``R<k>-<id>``.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    base = pq.read_table(source)
    n = base.num_rows
    copies, rest = divmod(customers, n)
    rng = np.random.default_rng(seed)
    index = np.concatenate([np.tile(np.arange(n), copies), np.sort(rng.choice(n, rest, replace=False))])
    copy_no = np.concatenate([np.repeat(np.arange(copies), n), np.full(rest, copies)])
    table = base.take(pa.array(index))
    ids = table.column("customer_id").combine_chunks()
    prefixes = pa.array(np.where(copy_no == 0, "", np.char.add(np.char.add("R", copy_no.astype(str)), "-")))
    table = table.set_column(
        table.schema.get_field_index("customer_id"),
        table.schema.field("customer_id"),
        pc.binary_join_element_wise(prefixes, ids, ""),
    )
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for part, start in enumerate(range(0, customers, FILE_ROWS)):
        pq.write_table(
            table.slice(start, FILE_ROWS),
            out / f"part-{part:05d}.zstd.parquet",
            compression="zstd",
            row_group_size=FILE_ROWS,
        )
    if pc.count_distinct(table.column("customer_id")).as_py() != customers:
        raise RuntimeError("synthetic customer ids are not unique")
    return {"source_rows": n, "copies": copies, "sampled": rest, "files": math.ceil(customers / FILE_ROWS)}


# ---------------------------------------------------------------------------------------------
# memory of a process tree
# ---------------------------------------------------------------------------------------------


def _status_kb(pid: int, key: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmHWM, VmRSS), 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def tree_peaks(pid: int | None = None) -> dict[str, Any]:
    """VmHWM (MB) of a process (default: this one) and of its live descendants, grouped: JVM, Python workers, other.

    Also ``cpu_seconds``: user + system time of all of them, with their reaped children's (exited Python
    workers count through the PySpark daemon that reaped them).
    """
    import psutil

    def cpu(process: psutil.Process) -> float:
        t = process.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    me = psutil.Process(pid)
    groups: dict[str, float] = {"python_driver_mb": _status_kb(me.pid, "VmHWM") / 1024}
    cpu_seconds = cpu(me)
    children: list[dict[str, Any]] = []
    for child in me.children(recursive=True):
        try:
            name = child.name()
            cpu_seconds += cpu(child)
        except psutil.Error:
            continue
        hwm = _status_kb(child.pid, "VmHWM") / 1024
        kind = "jvm_mb" if name == "java" else "python_workers_mb" if name.startswith("python") else "other_mb"
        groups[kind] = groups.get(kind, 0.0) + hwm
        children.append({"pid": child.pid, "name": name, "vm_hwm_mb": round(hwm)})
    return {**{k: round(v) for k, v in groups.items()}, "cpu_seconds": round(cpu_seconds, 1), "processes": children}


class TreeSampler:
    """Samples the summed resident set of a process and its descendants in a thread; ``peak_mb`` is the max."""

    def __init__(self, pid: int, every: float = SAMPLE_SECONDS) -> None:
        self.pid, self.every, self.peak_mb = pid, every, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                pids = [self.pid, *(c.pid for c in root.children(recursive=True))]
            except psutil.Error:
                pids = []
            self.peak_mb = max(self.peak_mb, sum(_status_kb(p, "VmRSS") for p in pids) / 1024)
            self._stop.wait(self.every)


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used since boot (/proc/stat: everything but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_measured(args: list[str], env: dict[str, str], log_file: Path) -> tuple[float, float, int]:
    """Run a child (output to ``log_file``); (wall seconds, peak summed RSS of its tree in MB, exit code)."""
    t0 = time.perf_counter()
    with log_file.open("w") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        with TreeSampler(proc.pid) as sampler:
            code = proc.wait()
    return time.perf_counter() - t0, sampler.peak_mb, code


# ---------------------------------------------------------------------------------------------
# the children
# ---------------------------------------------------------------------------------------------


def _timing_wrapper(owner: Any, attribute: str, into: list[float]) -> None:
    """Replace ``owner.attribute`` by a wrapper that appends each call's wall seconds to ``into``."""
    original: Callable[..., Any] = getattr(owner, attribute)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - started)

    setattr(owner, attribute, timed)


def child_subject() -> dict[str, Any]:
    """``get_spark`` + ``score`` + ``publish`` for :data:`DS` with the settings of MSP_HOME, timed per phase."""
    import jobs.scoring.forecast
    import jobs.scoring.score
    from jobs.scoring.score import publish, score
    from jobs.settings import get_settings
    from jobs.spark import get_spark
    from jobs.warehouse import Warehouse

    forecast_s: list[float] = []
    replace_s: list[float] = []
    lake_write_s: list[float] = []
    _timing_wrapper(jobs.scoring.forecast, "forecast", forecast_s)
    _timing_wrapper(Warehouse, "replace", replace_s)
    _timing_wrapper(jobs.scoring.score, "write_partitions", lake_write_s)

    settings = get_settings()
    t0 = time.perf_counter()
    spark = get_spark(settings, "msp-bench-score", settings.scoring_driver_memory)  # as the DAG's score task
    spark_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = score(spark, settings, DS)
    score_s = time.perf_counter() - t0
    after_score = tree_peaks()
    t0 = time.perf_counter()
    published = publish(spark, settings, DS)
    publish_s = time.perf_counter() - t0
    peaks = tree_peaks()
    spark.stop()
    return {
        "customers": result.customers,
        "strategies": len(result.mix),
        "assignments": published["assignments"],
        "forecast_rows": published["forecast"],
        "model_version": result.champion.version,
        "spark_start_seconds": spark_s,
        "score_seconds": score_s,
        "score_phases": result.seconds,
        # write_partitions runs the assignments' Spark job (createDataFrame, recommendations) and writes
        "lake_write_job_seconds": sum(lake_write_s),
        "publish_seconds": publish_s,
        "publish_forecast_seconds": sum(forecast_s),
        "publish_warehouse_seconds": sum(replace_s),
        "publish_read_seconds": publish_s - sum(forecast_s) - sum(replace_s),
        "optimiser": result.optimiser,
        "mix": result.mix,
        "driver_memory": settings.scoring_driver_memory,
        "peaks_after_score": after_score,
        "peaks": peaks,
    }


def child_baseline(chunk: int = BASELINE_CHUNK) -> dict[str, Any]:
    """The champion through ``mlflow.pyfunc`` in one process over the same features, in chunks; no Spark."""
    import mlflow.pyfunc
    import numpy as np
    import pyarrow.dataset as pads

    from jobs.pipeline.lake import partition_path
    from jobs.settings import get_settings
    from jobs.training.train import configure_mlflow, model_name

    settings = get_settings()
    configure_mlflow(settings)
    t0 = time.perf_counter()
    model = mlflow.pyfunc.load_model(f"models:/{model_name(settings, settings.scoring_model)}@champion")
    spec = model.unwrap_python_model().predictor.spec
    load_s = time.perf_counter() - t0
    read_s = predict_s = 0.0
    rows, control_sum = 0, 0.0
    t_pass = time.perf_counter()
    t = time.perf_counter()
    for batch in pads.dataset(partition_path(settings, "gold", "features", DS)).to_batches(batch_size=chunk):
        flat = spec.flatten(batch.to_pandas())
        read_s += time.perf_counter() - t
        t = time.perf_counter()
        out = model.predict(flat)
        predict_s += time.perf_counter() - t
        rows += len(out)
        control_sum += float(np.sum(out["p_convert__no_action"]))
        t = time.perf_counter()
    pass_s = time.perf_counter() - t_pass
    return {
        "customers": rows,
        "strategies": out.shape[1] // 2,
        "load_seconds": load_s,
        "read_flatten_seconds": read_s,
        "predict_seconds": predict_s,
        "pass_seconds": pass_s,
        "mean_p_convert_control": control_sum / rows,
        "peaks": tree_peaks(),
    }


def child_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one side of the scoring benchmark (MSP_HOME = the work home)")
    parser.add_argument("--side", choices=("subject", "baseline"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    result = child_subject() if args.side == "subject" else child_baseline()
    args.out.write_text(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------


def _mean_control(home: Path) -> float:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    column = pq.read_table(home / f"var/lake/gold/assignments/ds={DS}", columns=["p_convert_control"]).column(0)
    return float(pc.mean(column).as_py())


def _failure(log_file: Path, code: int) -> str:
    text = log_file.read_text(errors="replace")
    if "OutOfMemoryError" in text:
        return f"exit {code}: java.lang.OutOfMemoryError (see the tail below)\n{text[-2000:]}"
    if code < 0:
        return f"killed by signal {-code} (the kernel's OOM killer?)\n{text[-2000:]}"
    return f"exit {code}\n{text[-2000:]}"


def bench_size(home: Path, source: Path, customers: int, env: dict[str, str], work: Path) -> dict[str, Any]:
    """One size: synthetic features, then the baseline and the subject child; figures or a failure."""
    log.info("scoring: %d customers: building the synthetic features", customers)
    reset_outputs(home)
    synth = synthetic_features(source, customers, home / f"var/lake/gold/features/ds={DS}")
    row: dict[str, Any] = {"customers": customers, "synthetic": synth}
    py = [sys.executable, "-m", "tests.bench.scoring"]

    log.info("scoring: %d customers: baseline (pyfunc in chunks of %d)", customers, BASELINE_CHUNK)
    out, log_file = work / f"baseline-{customers}.json", work / f"baseline-{customers}.log"
    seconds, tree_mb, code = run_measured([*py, "--side", "baseline", "--out", str(out)], env, log_file)
    if code != 0:
        row["failed"] = "baseline: " + _failure(log_file, code)
        log.error("scoring: %d customers: the baseline failed: %s", customers, row["failed"][:500])
        return row
    base = json.loads(out.read_text())
    row["baseline"] = {
        "load_seconds": round(base["load_seconds"], 2),
        "read_flatten_seconds": round(base["read_flatten_seconds"], 2),
        "predict_seconds": round(base["predict_seconds"], 2),
        "pass_seconds": round(base["pass_seconds"], 2),
        "process_seconds": round(seconds, 1),
        "peak_rss_mb": base["peaks"]["python_driver_mb"],
        "scored_rows_per_s": round(customers * base["strategies"] / base["pass_seconds"]),
        "cpu_seconds": base["peaks"]["cpu_seconds"],
    }

    log.info("scoring: %d customers: subject (score + publish)", customers)
    out, log_file = work / f"subject-{customers}.json", work / f"subject-{customers}.log"
    busy = machine_busy_seconds()
    seconds, tree_mb, code = run_measured([*py, "--side", "subject", "--out", str(out)], env, log_file)
    busy = machine_busy_seconds() - busy
    row["process_seconds"] = round(seconds, 1)
    row["sampled_tree_peak_mb"] = round(tree_mb)
    if code != 0:
        row["failed"] = "subject: " + _failure(log_file, code)
        log.error("scoring: %d customers: the subject failed: %s", customers, row["failed"][:500])
        return row
    sub = json.loads(out.read_text())
    peaks = sub["peaks"]
    k = sub["strategies"]
    total = sub["score_seconds"] + sub["publish_seconds"]
    driver_mb = peaks["python_driver_mb"] + peaks.get("jvm_mb", 0)
    after_score = sub["peaks_after_score"]
    mix = {s: sum(reasons.values()) for s, reasons in sub["mix"].items()}
    row.update(
        {
            "strategies": k,
            "assignments": sub["assignments"],
            "forecast_rows": sub["forecast_rows"],
            "driver_memory": sub["driver_memory"],
            "spark_start_seconds": round(sub["spark_start_seconds"], 2),
            "score_seconds": round(sub["score_seconds"], 2),
            "phases": {
                "predict (read, UDF, persist + count)": round(sub["score_phases"].get("predict", 0.0), 2),
                "optimise (compact frame to driver, knapsack, randomisation)": round(
                    sub["score_phases"].get("optimise", 0.0), 2
                ),
                "write_lake: before the write job (pandas frame, createDataFrame)": round(
                    sub["score_phases"].get("write_lake", 0.0) - sub["lake_write_job_seconds"], 2
                ),
                "write_lake: write job (recommendations + Parquet write)": round(sub["lake_write_job_seconds"], 2),
                "publish: read assignments back to pandas": round(sub["publish_read_seconds"], 2),
                "publish: forecast (bootstrap)": round(sub["publish_forecast_seconds"], 2),
                "publish: warehouse writes (DuckDB)": round(sub["publish_warehouse_seconds"], 2),
            },
            "publish_seconds": round(sub["publish_seconds"], 2),
            "total_seconds": round(total, 2),
            "scored_rows_per_s": round(customers * k / sub["score_seconds"]),
            "assignment_rows_per_s": round(sub["assignments"] / sub["publish_seconds"]),
            "end_to_end_customers_per_s": round(customers / total),
            "peak_python_driver_mb": peaks["python_driver_mb"],
            "peak_jvm_mb": peaks.get("jvm_mb", 0),
            "peak_python_workers_mb": peaks.get("python_workers_mb", 0),
            "peak_driver_mb": driver_mb,
            "peak_driver_mb_after_score": after_score["python_driver_mb"] + after_score.get("jvm_mb", 0),
            "peak_python_driver_mb_after_score": after_score["python_driver_mb"],
            "cpu_seconds": peaks["cpu_seconds"],
            # CPU the rest of the machine used while the subject ran (other work stretches its wall times)
            "other_cpu_seconds": round(max(busy - peaks["cpu_seconds"], 0.0), 1),
            "other_cpu_share": round(max(busy - peaks["cpu_seconds"], 0.0) / (seconds * (os.cpu_count() or 1)), 3),
            "cpu_ratio_to_baseline": round(peaks["cpu_seconds"] / max(base["peaks"]["cpu_seconds"], 1e-9), 1),
            "mix": mix,
            "goal_met": driver_mb < GOAL_PEAK_MB,
            "ratio_to_baseline": round(total / base["pass_seconds"], 1),
            "predict_ratio_to_baseline": round(sub["score_phases"].get("predict", 0.0) / base["pass_seconds"], 1),
            "objective": sub["optimiser"].get("objective"),
            "gap_share": sub["optimiser"].get("gap_share"),
            "spent": sub["optimiser"].get("spent"),
            "budget": sub["optimiser"].get("budget"),
        }
    )
    subject_mean = _mean_control(home)
    row["same_predictions"] = math.isclose(subject_mean, base["mean_p_convert_control"], rel_tol=1e-6, abs_tol=1e-9)
    row["mean_p_convert_control"] = {"subject": subject_mean, "baseline": base["mean_p_convert_control"]}
    log.info(
        "scoring: %d customers: score %.1f s + publish %.1f s (baseline %.1f s), driver peak %d MB",
        customers,
        sub["score_seconds"],
        sub["publish_seconds"],
        base["pass_seconds"],
        driver_mb,
    )
    return row


def bench_scoring(work: Path, quick: bool = False, var: Path | None = None) -> dict[str, Any]:
    """The scoring figures per size (see the module docstring); raises DemoStateMissing without ``make demo``."""
    var = ROOT / "var" if var is None else var
    state = demo_state(var)
    sizes = QUICK_SIZES if quick else SIZES
    home = work / "scoring-home"
    prepare_home(home, state)
    from jobs.settings import Settings

    driver_memory = Settings().scoring_driver_memory  # MSP_SCORING_DRIVER_MEMORY or the platform's default
    env = {
        **os.environ,
        "MSP_HOME": str(home),
        "MSP_LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("MSP_WAREHOUSE_URL", None)  # the default: DuckDB in the work home
    runs = [bench_size(home, state["features"], n, env, work) for n in sizes]
    results: dict[str, Any] = {
        "ds": DS,
        "sizes": list(sizes),
        "driver_memory": driver_memory,
        "spark_master": os.environ.get("MSP_SPARK_MASTER", "local[*]"),
        "cores": os.cpu_count(),
        "source_customers": runs[0].get("synthetic", {}).get("source_rows"),
        "baseline_chunk": BASELINE_CHUNK,
        "sample_seconds": SAMPLE_SECONDS,
        "runs": runs,
        "goal": {"peak_driver_mb_max": GOAL_PEAK_MB},
    }
    done = [r for r in runs if "failed" not in r]
    if len(done) >= 2:
        a, b = done[-2], done[-1]
        results["scaling_exponent"] = {
            "from": a["customers"],
            "to": b["customers"],
            "total": round(
                math.log(b["total_seconds"] / a["total_seconds"]) / math.log(b["customers"] / a["customers"]), 2
            ),
            "baseline": round(
                math.log(b["baseline"]["pass_seconds"] / a["baseline"]["pass_seconds"])
                / math.log(b["customers"] / a["customers"]),
                2,
            ),
        }
    largest = runs[-1]
    results["goal_met"] = "failed" not in largest and largest["goal_met"]
    return results


if __name__ == "__main__":
    sys.exit(child_main())
