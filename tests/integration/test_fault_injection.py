"""Fault injection on the lake: a Spark job killed in the middle of writing a partition.

Every lake write goes through :func:`jobs.pipeline.lake.write_partitions` (dynamic partition
overwrite). The child process below is a whole Spark application (driver and JVM) that is SIGKILLed
while some of its tasks have written their files and others are still running; the table must
still read exactly as before, and the rerun must replace the date. The warehouse's kill between
staging and swap is tested in test_warehouse_scoring.py, MLflow registration in
tests/e2e/test_train_faults.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from jobs.pipeline.lake import read_range, write_partitions

ROOT = Path(__file__).resolve().parents[2]
D1, D2 = "2026-03-01", "2026-03-02"

CHILD = """
import sys
from pathlib import Path

from jobs.pipeline.lake import write_partitions
from jobs.settings import Settings
from jobs.spark import get_spark

home, root, ds = sys.argv[1:4]
spark = get_spark(Settings(home=Path(home), spark_master="local[2]"), "msp-fault-child")


def dawdle(batches):
    import time

    for batch in batches:
        time.sleep(4)  # each task is slow: some tasks have written their files while others still run
        yield batch


frame = spark.range(0, 40_000, numPartitions=8).selectExpr("id", "'v2' AS version", f"'{ds}' AS ds")
write_partitions(spark, frame.mapInPandas(dawdle, frame.schema), Path(root), [ds])
print("committed", flush=True)
"""


def _frame(spark, ds: str, n: int, version: str):
    return spark.range(0, n, numPartitions=2).selectExpr("id", f"'{version}' AS version", f"'{ds}' AS ds")


def _table(spark, root: Path) -> dict[tuple[str, str], int]:
    frame = read_range(spark, root, [D1, D2])
    return {(r["ds"], r["version"]): r["count"] for r in frame.groupBy("ds", "version").count().collect()}


def _staged_files(root: Path) -> list[Path]:
    return [p for p in root.glob(".spark-staging-*/**/*.parquet") if p.is_file()]


def test_a_spark_job_killed_mid_write_leaves_the_previous_partition_and_the_rerun_replaces_it(
    spark, tmp_path: Path
) -> None:
    root = tmp_path / "lake" / "silver" / "orders"
    write_partitions(spark, _frame(spark, D1, 1000, "v1").unionByName(_frame(spark, D2, 500, "v1")), root, [D1, D2])
    before = _table(spark, root)
    assert before == {(D1, "v1"): 1000, (D2, "v1"): 500}

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "child"), str(root), D1],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "MSP_FAULT"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the driver, the JVM and the Python workers
    )
    try:
        deadline = time.monotonic() + 240
        while not _staged_files(root):
            assert child.poll() is None, f"the child ended before it staged anything: {child.communicate()[1][-3000:]}"
            assert time.monotonic() < deadline, "the child staged no file in 240 s"
            time.sleep(0.2)
        os.killpg(child.pid, signal.SIGKILL)  # like a lost machine: no shutdown hook, no job abort
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    assert child.returncode == -signal.SIGKILL and "committed" not in out

    # readers see exactly the previous partitions: no partial rows of the killed job
    assert _table(spark, root) == before
    assert _staged_files(root), "the kill should have left the job's staged files behind (hidden from readers)"

    # the rerun completes and replaces only its date
    write_partitions(spark, _frame(spark, D1, 40_000, "v2"), root, [D1])
    assert _table(spark, root) == {(D1, "v2"): 40_000, (D2, "v1"): 500}
