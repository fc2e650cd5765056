"""The local PostgreSQL the tests and benchmarks use: answer check and start of the machine's cluster."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

#: an admin URL of the test cluster (override with MSP_TEST_POSTGRES_URL)
POSTGRES_ADMIN_URL = os.environ.get("MSP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def postgres_answers(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    return True


def ensure_postgres(admin_url: str = POSTGRES_ADMIN_URL, wait_s: float = 30.0) -> bool:
    """True when PostgreSQL answers at ``admin_url``, after ``pg_ctlcluster … main start`` if it did not."""
    if postgres_answers(admin_url):
        return True
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").is_dir() else []
    for version in versions:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            check=False,
            capture_output=True,
            timeout=60,
        )
    deadline = time.monotonic() + wait_s
    while not postgres_answers(admin_url):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True
