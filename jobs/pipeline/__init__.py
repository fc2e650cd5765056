"""Spark steps of the ingestion pipeline: extract -> pure transform -> load, session passed in."""

from __future__ import annotations
