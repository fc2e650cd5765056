"""OpenMP threads that spin only briefly before they sleep while they wait for work.

XGBoost (and scikit-learn) run on libgomp, whose idle threads busy-wait for up to 300,000 spins by default.
When the cores are shared with anything else (a Spark JVM, a second task, another DAG's run) the spinning
threads take the cores the working ones need. One measurement on 2 cores (300 boosting rounds on 6,000 rows,
2 threads; not a bench figure): idle machine 0.58 s default, 0.47 s with ``GOMP_SPINCOUNT=1000``, 1.33 s with
``OMP_WAIT_POLICY=PASSIVE``; with two busy processes beside it 5.3 s default, 2.1 s at 1,000 spins, 2.6 s
passive; with four, 6.1 / 2.5 / 5.1 s. So a short spin, not a passive wait. libgomp reads the variable once,
when it loads: it has to be in the environment of every process before XGBoost is imported (the ``msp`` CLI,
the Airflow task processes, the Spark executors). A value the user set is kept; other OpenMP runtimes ignore it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

THREAD_ENV = {"GOMP_SPINCOUNT": "1000"}


def thread_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """:data:`THREAD_ENV`, keeping any value already set in ``environ`` (default: this process's)."""
    current = os.environ if environ is None else environ
    return {key: current.get(key, value) for key, value in THREAD_ENV.items()}


def use_thread_env() -> None:
    """Put :func:`thread_env` into this process's environment (before anything loads libgomp)."""
    os.environ.update(thread_env())
