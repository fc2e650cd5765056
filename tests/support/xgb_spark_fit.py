"""Driver process of the standalone-cluster test: fit the spark engine against a master and report.

``python -m tests.support.xgb_spark_fit MASTER FOLDER`` reads ``FOLDER/data.npz`` (X, y, treatment,
propensity) and ``FOLDER/params.json``, builds the session with :func:`jobs.spark.get_spark` (app
``msp-train-xgboost``, as training does), fits ``XGBUpliftTLearner(engine="spark", **params)``,
saves it to ``FOLDER/model`` and prints one JSON line: master, application id, executors, seconds.

A process of its own: a SparkContext cannot change masters, and the test process may already hold
the local session of other tests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

APP_NAME = "msp-train-xgboost"


def main(argv: list[str]) -> int:
    import numpy as np

    from jobs.models.xgb_uplift import XGBUpliftTLearner
    from jobs.settings import Settings
    from jobs.spark import get_spark

    master, folder = argv[0], Path(argv[1])
    data = np.load(folder / "data.npz")
    params = json.loads((folder / "params.json").read_text())
    spark = get_spark(Settings(home=folder, spark_master=master), APP_NAME, driver_memory="1g")
    try:
        model = XGBUpliftTLearner(engine="spark", **params)
        model.fit(data["X"], data["y"], data["treatment"], data["propensity"])
        model.save(folder / "model")
        sc = spark.sparkContext
        report = {
            "master": sc.master,
            "app_id": sc.applicationId,
            "executors": sc._jsc.sc().getExecutorMemoryStatus().size() - 1,  # minus the driver's block manager
            "fit_seconds": model.fit_seconds_,
        }
    finally:
        spark.stop()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
