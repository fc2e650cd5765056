"""Fault points: named places where a test (or an operator rehearsing a failure) can kill a job.

``MSP_FAULT`` holds a comma-separated list of point names. When a running job reaches a listed
point it logs a warning and SIGKILLs its own process, exactly what an OOM killer or a lost
machine would do: no ``finally`` block, no exception handler, no atexit hook runs. The
reliability tests use it to show that every write leaves the previous state readable and that
a rerun completes. Points:

- ``warehouse_before_swap``: the new slice is staged, the swap transaction not committed.
- ``mlflow_after_register``: a new model version is registered, the alias ``challenger`` and the
  version's tags are not yet set.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

log = logging.getLogger(__name__)

FAULT_ENV = "MSP_FAULT"
WAREHOUSE_BEFORE_SWAP = "warehouse_before_swap"
MLFLOW_AFTER_REGISTER = "mlflow_after_register"
POINTS = (WAREHOUSE_BEFORE_SWAP, MLFLOW_AFTER_REGISTER)


def armed(name: str) -> bool:
    """Whether ``MSP_FAULT`` lists the point ``name``."""
    return name in {p.strip() for p in os.environ.get(FAULT_ENV, "").split(",")}


def fault_point(name: str, hook: Callable[[], None] | None = None) -> None:
    """Run the in-process test ``hook`` if given, then SIGKILL this process if ``name`` is armed."""
    if name not in POINTS:
        raise ValueError(f"unknown fault point {name!r}; known: {', '.join(POINTS)}")
    if hook is not None:
        hook()
    if armed(name):
        log.warning("%s=%s: killing this process (pid %d) at the fault point", FAULT_ENV, name, os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)
