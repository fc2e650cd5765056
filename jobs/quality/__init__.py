"""Data quality: Great Expectations suites per silver table, kept as code next to the contract."""

from __future__ import annotations
