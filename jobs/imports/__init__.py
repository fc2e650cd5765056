"""Imports of external data sets into the platform's landing formats.

``jobs.imports.campaign_log`` maps any A/B-test or campaign export (CSV, JSON lines, Parquet) into
the ``campaign_log`` landing format through a YAML column mapping; ``jobs.imports.cli`` is the
``msp import`` command group. Importing this package is cheap: the heavy modules load on use.
"""

from __future__ import annotations
