"""Marketing Strategy Platform: the jobs package (Spark steps, domain code and the ``msp`` CLI).

Importing this package has no side effects: no session, no logging setup, no file access.
"""

from __future__ import annotations

__version__ = "0.1.0"
