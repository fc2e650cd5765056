"""Task bodies of ``marketing_evaluate`` (also used by the CLI): thin wrappers over jobs.evaluation."""

from __future__ import annotations

import logging
from typing import Any

from jobs.settings import get_settings
from jobs.training.tasks import fail_on_data_errors

log = logging.getLogger(__name__)


def evaluate_task(ds: str) -> dict[str, Any]:
    """Evaluate every run whose attribution window closed by ``ds``; returns the per-run summary."""
    from jobs.evaluation.evaluate import evaluate, summary
    from jobs.spark import get_spark

    settings = get_settings()
    return summary(fail_on_data_errors(evaluate, get_spark(settings, "msp-evaluate"), settings, ds))
