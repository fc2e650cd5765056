"""Sources that fill the landing zone from outside systems (file exports arrive on their own).

``jobs.sources.http`` pulls JSON pages from the shop's REST API; ``jobs.sources.cli`` is the
``msp pull`` command group.
"""

from __future__ import annotations
