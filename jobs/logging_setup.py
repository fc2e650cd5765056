"""Logging configuration for the CLI and for jobs run outside Airflow (Airflow configures its own)."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (test runners and typer swap it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # the base class assigns it; the current stderr always wins
        pass


def configure_logging(level: str = "INFO") -> None:
    """Send ``jobs.*`` logs to stderr once; quieten chatty third-party loggers."""
    root = logging.getLogger()
    if not any(getattr(h, "_msp", False) for h in root.handlers):
        handler = _CurrentStderrHandler()
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
        handler._msp = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("py4j", "urllib3", "matplotlib", "numba", "great_expectations._docs_decorators"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
