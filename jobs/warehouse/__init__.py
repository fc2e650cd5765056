"""The warehouse: DuckDB (embedded default) or PostgreSQL, schema from settings, versioned migrations.

Writes replace a slice (for example one run date of one table) inside one transaction, so a
reader sees the old slice or the new one, never half, and a rerun never duplicates. PostgreSQL
is written with COPY, never row by row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def migrations() -> list[tuple[str, str]]:
    """(version, SQL) of every migration shipped in the package, in order."""
    folder = resources.files("jobs.warehouse") / "migrations"
    files = sorted(p for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(p.name.removesuffix(".sql"), p.read_text()) for p in files]


@dataclass
class Warehouse:
    url: str
    schema: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Warehouse:
        return cls(settings.resolved_warehouse_url, settings.warehouse_schema)

    @property
    def kind(self) -> str:
        if self.url.startswith("duckdb:///"):
            return "duckdb"
        if self.url.startswith(("postgresql://", "postgres://")):
            return "postgres"
        raise ValueError(
            "MSP_WAREHOUSE_URL must start with duckdb:/// or postgresql:// "
            f"(got a URL with scheme {self.url.split(':', 1)[0]!r})"
        )

    def connect(self) -> Any:
        if self.kind == "duckdb":
            import duckdb

            path = Path(self.url.removeprefix("duckdb:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            return duckdb.connect(str(path))
        import psycopg

        return psycopg.connect(self.url, autocommit=False)

    def migrate(self) -> list[str]:
        """Apply the migrations not applied yet (each in its own transaction); return their versions."""
        applied = []
        with _closing(self.connect()) as con:
            cur = self._cursor(con)
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.schema}.schema_migrations "
                "(version TEXT PRIMARY KEY, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )
            con.commit()
            cur.execute(f"SELECT version FROM {self.schema}.schema_migrations")
            done = {r[0] for r in cur.fetchall()}
            for version, sql in migrations():
                if version in done:
                    continue
                if self.kind == "duckdb":
                    cur.execute("BEGIN TRANSACTION")
                for statement in _statements(sql.format(schema=self.schema)):
                    cur.execute(statement)
                cur.execute(
                    f"INSERT INTO {self.schema}.schema_migrations (version) VALUES (%s)".replace(
                        "%s", "?" if self.kind == "duckdb" else "%s"
                    ),
                    [version],
                )
                con.commit()
                applied.append(version)
                log.info("warehouse %s: applied migration %s", self.kind, version)
        return applied

    def replace(self, table: str, where: dict[str, Any], frame: pd.DataFrame) -> int:
        """Replace the rows of ``table`` matching ``where`` by ``frame``, atomically."""
        self.migrate()
        cols = list(frame.columns)
        qualified = f"{self.schema}.{table}"
        mark = "?" if self.kind == "duckdb" else "%s"
        condition = " AND ".join(f"{k} = {mark}" for k in where)
        with _closing(self.connect()) as con:
            cur = self._cursor(con)
            if self.kind == "duckdb":
                cur.execute("BEGIN TRANSACTION")
                cur.execute(f"DELETE FROM {qualified} WHERE {condition}", list(where.values()))
                con.register("_incoming", frame)
                cur.execute(f"INSERT INTO {qualified} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM _incoming")
                con.unregister("_incoming")
            else:
                cur.execute(f"DELETE FROM {qualified} WHERE {condition}", list(where.values()))
                with cur.copy(f"COPY {qualified} ({', '.join(cols)}) FROM STDIN") as copy:
                    for row in frame.itertuples(index=False, name=None):
                        copy.write_row(row)
            con.commit()
        return len(frame)

    def _cursor(self, con: Any) -> Any:
        """DuckDB's ``cursor()`` opens another connection; statements must run on ``con`` itself."""
        return con if self.kind == "duckdb" else con.cursor()

    def query(self, sql: str) -> pd.DataFrame:
        import pandas as pd

        with _closing(self.connect()) as con:
            if self.kind == "duckdb":
                return con.execute(sql).df()
            cur = con.cursor()
            cur.execute(sql)
            return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])


class _closing:
    def __init__(self, con: Any) -> None:
        self.con = con

    def __enter__(self) -> Any:
        return self.con

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            try:
                self.con.rollback()
            except Exception:
                log.debug("rollback failed", exc_info=True)
        self.con.close()


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
