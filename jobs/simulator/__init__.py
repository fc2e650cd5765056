"""Deterministic shop simulator: the embedded data source and the platform's test oracle."""

from __future__ import annotations

from jobs.simulator.config import STRATEGIES, DirtRates, SimConfig

__all__ = ["STRATEGIES", "DirtRates", "SimConfig"]
