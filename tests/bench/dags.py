"""DAG parse time: every file in dags/ as Airflow's DAG processor loads it, against Airflow's own tutorial DAG.

Each measurement runs in a fresh interpreter that has already imported Airflow and the DagBag (as
the DAG processor has), so the time is what the file itself costs: its imports and its DAG
construction. The figure is the median over ``repeats`` fresh processes; the baseline is Airflow's
``tutorial_taskflow_api.py`` example DAG, measured the same way in the same run.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
GOAL_S = 0.3

PROBE = """
import json, os, sys, time
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
from airflow.dag_processing.dagbag import DagBag
import airflow.sdk
t = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "dags": len(bag.dags), "errors": list(bag.import_errors.values())}))
"""


def dag_files() -> list[Path]:
    return sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))


def reference_dag() -> Path:
    import airflow

    return Path(airflow.__file__).parent / "example_dags" / "tutorial_taskflow_api.py"


def parse_once(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True, cwd=ROOT, timeout=300
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["errors"] or not result["dags"]:
        raise RuntimeError(f"{path} did not load: {result['errors'] or 'no DAG found'}")
    return result


def bench_dag_parse(repeats: int = 5) -> dict[str, Any]:
    """Median parse seconds of every DAG file and of the reference, with the ratio and the goal."""
    reference = reference_dag()
    files = [*dag_files(), reference]
    samples: dict[Path, list[float]] = {path: [] for path in files}
    for _ in range(repeats):  # interleaved, so a noisy moment hits every file alike
        for path in files:
            samples[path].append(parse_once(path)["seconds"])
    ref = statistics.median(samples[reference])
    rows = [
        {
            "file": f"dags/{path.name}",
            "median_s": round(statistics.median(samples[path]), 4),
            "max_s": round(max(samples[path]), 4),
            "ratio_to_reference": round(statistics.median(samples[path]) / ref, 2),
        }
        for path in files[:-1]
    ]
    return {
        "repeats": repeats,
        "reference": f"airflow/example_dags/{reference.name}",
        "reference_median_s": round(ref, 4),
        "files": rows,
        "goal": {"seconds_max": GOAL_S},
        "goal_met": all(r["median_s"] < GOAL_S for r in rows),
    }
