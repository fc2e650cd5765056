"""Nightly scoring: strategy catalogue, budget-constrained policy optimiser, assignment and recommendations."""

from __future__ import annotations
