"""The warehouse: DuckDB (embedded default) or PostgreSQL, schema from settings, versioned migrations.

Writes replace a slice (for example one run date of one table) inside one transaction, so a
reader sees the old slice or the new one, never half, and a rerun never duplicates.

PostgreSQL write path (:meth:`Warehouse.replace`): the frame is streamed in chunks of
``COPY_CHUNK_ROWS`` with ``COPY ... FROM STDIN (FORMAT BINARY)`` into a session-temporary staging
table (not WAL-logged; the target is not touched and not locked meanwhile), the staged rows are
checked to lie inside the slice, then one short transaction deletes the slice and runs
``INSERT INTO target SELECT ... FROM staging``. The binary rows are built column-wise with Arrow
(no Python loop over rows) on the main thread while a psycopg writer thread sends the previous
chunk. Columns of a type the binary encoder does not know fall back to CSV COPY. DuckDB registers
the frame (pandas or Arrow, zero-copy) and deletes + inserts in one transaction.

Readers: on PostgreSQL ``msp warehouse init`` creates the ``bi_reader`` role (NOLOGIN: grant it to
the BI tool's login role) with read-only access to the schema, see :meth:`Warehouse.grant_readers`.
DuckDB has no roles: a BI tool opens the file read-only, ``duckdb.connect(path, read_only=True)``
(possible only while no writer process holds the file).
"""

from __future__ import annotations

import logging
import re
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.faults import WAREHOUSE_BEFORE_SWAP, fault_point
from jobs.settings import Settings, require_identifier

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    Frame = pd.DataFrame | pa.Table

log = logging.getLogger(__name__)

BI_ROLE = "bi_reader"
COPY_CHUNK_ROWS = 100_000
_STAGE = "_msp_stage"


DIALECTS = ("duckdb", "postgres")


def migrations() -> list[tuple[str, str]]:
    """(version, SQL) of every migration shipped in the package, in order.

    ``NNNN_name.sql`` runs on every engine; ``NNNN_name.<dialect>.sql`` (dialect ``postgres`` or
    ``duckdb``) only on that engine, and the other engines record its version without running it,
    so every warehouse lists the same versions. The version is the name without the suffixes.
    """
    folder = resources.files("jobs.warehouse") / "migrations"
    files = sorted(p for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(p.name.removesuffix(".sql"), p.read_text()) for p in files]


def split_version(name: str) -> tuple[str, str | None]:
    """``("0003_x", "postgres")`` for ``0003_x.postgres``; ``(name, None)`` for an engine-neutral migration."""
    stem, _, dialect = name.rpartition(".")
    if stem and dialect in DIALECTS:
        return stem, dialect
    return name, None


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
        """Apply the migrations not applied yet (each in its own transaction); return their versions.

        On PostgreSQL a session advisory lock serialises concurrent runners (two writers starting at once).
        """
        applied = []
        with _closing(self.connect()) as con:
            cur = self._cursor(con)
            if self.kind == "postgres":
                cur.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"msp_migrate:{self.schema}"])
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.schema}.schema_migrations "
                "(version TEXT PRIMARY KEY, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )
            con.commit()
            cur.execute(f"SELECT version FROM {self.schema}.schema_migrations")
            done = {r[0] for r in cur.fetchall()}
            for name, sql in migrations():
                version, dialect = split_version(name)
                if version in done:
                    continue
                if self.kind == "duckdb":
                    cur.execute("BEGIN TRANSACTION")
                if dialect in (None, self.kind):
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

    def grant_readers(self) -> str:
        """Give the read-only role ``bi_reader`` SELECT on the schema (PostgreSQL); return what was done.

        The role is NOLOGIN (a group): grant it to the BI tool's own login role. Creating it needs
        CREATEROLE, unless a DBA created it already. Default privileges make tables and views created
        later by the role running this (the migration owner) readable too. Idempotent.
        """
        if self.kind == "duckdb":
            log.info(
                "warehouse duckdb: roles do not apply; a BI tool opens the file read-only "
                "(duckdb.connect(path, read_only=True)) while no writer holds it"
            )
            return "DuckDB has no roles: open the file read-only (duckdb.connect(path, read_only=True))"
        with _closing(self.connect()) as con:
            cur = con.cursor()
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('msp_bi_reader'))")
            cur.execute(
                "DO $$ BEGIN "
                f"IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{BI_ROLE}') THEN "
                f"CREATE ROLE {BI_ROLE} NOLOGIN; "
                "END IF; "
                "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; "  # created meanwhile elsewhere
                "END $$"
            )
            cur.execute(f"GRANT USAGE ON SCHEMA {self.schema} TO {BI_ROLE}")
            cur.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {self.schema} TO {BI_ROLE}")
            cur.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {self.schema} GRANT SELECT ON TABLES TO {BI_ROLE}")
            con.commit()
        log.info("warehouse postgres: role %s can read schema %s (tables, views, future tables)", BI_ROLE, self.schema)
        return f"role {BI_ROLE} (NOLOGIN) has SELECT on schema {self.schema}"

    def replace(
        self,
        table: str,
        where: dict[str, Any],
        frame: Frame,
        *,
        before_swap: Callable[[], None] | None = None,
    ) -> int:
        """Replace the rows of ``table`` matching ``where`` by ``frame`` (pandas or Arrow), atomically.

        Every row of ``frame`` must lie inside the slice (else ValueError, nothing changes), so a rerun
        never duplicates. ``before_swap`` (or ``MSP_FAULT=warehouse_before_swap``, which SIGKILLs the
        process) runs after staging and before the swap transaction: for fault-injection tests.
        """
        require_identifier(table, "table ")
        for key in where:
            require_identifier(key, "column ")
        cols = [require_identifier(str(c), "column ") for c in _column_names(frame)]
        self.migrate()
        if self.kind == "duckdb":
            rows = self._replace_duckdb(table, where, frame, cols, before_swap)
        else:
            rows = self._replace_postgres(table, where, frame, cols, before_swap)
        log.info("warehouse %s: %s.%s %s replaced by %d rows", self.kind, self.schema, table, where, rows)
        return rows

    def _replace_duckdb(
        self, table: str, where: dict[str, Any], frame: Frame, cols: list[str], before_swap: Callable[[], None] | None
    ) -> int:
        """Delete + insert; on a table with a primary key, upsert + delete the keys gone from the slice instead.

        DuckDB commits deletes from a table with an ART index (primary key) slowly (about 55 s per million
        rows here), so a rerun updates the rows whose key stays and deletes only the keys that left the slice.
        Same result, as long as the frame carries every column (else: delete + insert).
        """
        qualified, collist = f"{self.schema}.{table}", ", ".join(cols)
        condition = " AND ".join(f"{k} = ?" for k in where)
        rows = _num_rows(frame)
        with _closing(self.connect()) as con:
            key, columns = _duckdb_key_and_columns(con, self.schema, table)
            upsert = bool(key) and set(key) <= set(cols) and set(columns) <= set(cols)
            con.register("_incoming", frame)
            fault_point(WAREHOUSE_BEFORE_SWAP, before_swap)
            con.execute("BEGIN TRANSACTION")
            if upsert:
                same_key = " AND ".join(f"_new.{k} = _old.{k}" for k in key)
                con.execute(
                    f"DELETE FROM {qualified} AS _old WHERE {condition} "
                    f"AND NOT EXISTS (SELECT 1 FROM _incoming AS _new WHERE {same_key})",
                    list(where.values()),
                )
                con.execute(f"INSERT OR REPLACE INTO {qualified} ({collist}) SELECT {collist} FROM _incoming")
            else:
                con.execute(f"DELETE FROM {qualified} WHERE {condition}", list(where.values()))
                con.execute(f"INSERT INTO {qualified} ({collist}) SELECT {collist} FROM _incoming")
            inside = con.execute(f"SELECT count(*) FROM {qualified} WHERE {condition}", list(where.values()))
            _require_inside(inside.fetchall()[0][0], rows, qualified, where)
            con.commit()
            con.unregister("_incoming")
        return rows

    def _replace_postgres(
        self, table: str, where: dict[str, Any], frame: Frame, cols: list[str], before_swap: Callable[[], None] | None
    ) -> int:
        """COPY into a session-temporary staging table, commit, then delete + INSERT ... SELECT in one transaction."""
        qualified, collist = f"{self.schema}.{table}", ", ".join(cols)
        condition = " AND ".join(f"{k} = %s" for k in where)
        rows = _num_rows(frame)
        with _closing(self.connect()) as con:
            cur = con.cursor()
            cur.execute("SET client_encoding TO 'UTF8'")
            key = _pg_list_partition_key(cur, self.schema, table)
            if key is not None and list(where) == [key]:
                return self._swap_partition(con, table, key, where[key], frame, cols, before_swap)
            cur.execute(f"CREATE TEMP TABLE {_STAGE} AS SELECT {collist} FROM {qualified} WITH NO DATA")
            cur.execute(f"SELECT {collist} FROM {_STAGE} LIMIT 0")
            oids = [d.type_code for d in cur.description]
            con.commit()  # hold no lock on the target while staging
            started = time.perf_counter()
            _copy_frame(cur, f"COPY {_STAGE} ({collist}) FROM STDIN", oids, frame)
            cur.execute(f"SELECT count(*) FROM {_STAGE} WHERE ({condition}) IS TRUE", list(where.values()))
            _require_inside(cur.fetchone()[0], rows, qualified, where)
            con.commit()
            staged = time.perf_counter()
            fault_point(WAREHOUSE_BEFORE_SWAP, before_swap)
            # one writer per table swaps at a time: a concurrent rerun of the slice waits, then replaces it whole
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"msp_replace:{qualified}"])
            cur.execute(f"DELETE FROM {qualified} WHERE {condition}", list(where.values()))
            cur.execute(f"INSERT INTO {qualified} ({collist}) SELECT {collist} FROM {_STAGE}")
            con.commit()
            log.debug(
                "%s: staged %d rows in %.2f s, swapped in %.2f s",
                qualified,
                rows,
                staged - started,
                time.perf_counter() - staged,
            )
        return rows

    def _swap_partition(
        self,
        con: Any,
        table: str,
        key: str,
        value: Any,
        frame: Frame,
        cols: list[str],
        before_swap: Callable[[], None] | None,
    ) -> int:
        """Load the slice into a new table and swap it in as the slice's partition, all in one transaction.

        COPY into a fresh table, check every row lies in the slice, add the partition's CHECK constraint
        (so ATTACH skips its validation scan) and the primary key (ATTACH adopts it as the partition of the
        parent's index); then drop the slice's old partition (or delete its rows from the DEFAULT
        partition), rename and attach. Readers keep the old slice until the commit and wait only for the
        drop/attach at the end; a crash anywhere rolls the whole transaction back.
        """
        from psycopg import sql

        schema, rows = self.schema, _num_rows(frame)
        part = require_identifier(f"{table}__{re.sub(r'[^0-9A-Za-z_]', '_', str(value))}"[:63], "partition ")
        stage = f"_msp_stage_{table}"[:55]
        literal = sql.Literal(value).as_string(con)
        qualified, collist = f"{schema}.{table}", ", ".join(cols)
        cur = con.cursor()
        # one writer per table at a time (held to the commit): a concurrent rerun waits, then replaces whole
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"msp_replace:{qualified}"])
        started = time.perf_counter()
        cur.execute(f"CREATE TABLE {schema}.{stage} (LIKE {qualified} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cur.execute(f"SELECT {collist} FROM {schema}.{stage} LIMIT 0")
        oids = [d.type_code for d in cur.description]
        _copy_frame(cur, f"COPY {schema}.{stage} ({collist}) FROM STDIN", oids, frame)
        cur.execute(f"SELECT count(*) FROM {schema}.{stage} WHERE {key} = {literal}")
        _require_inside(cur.fetchone()[0], rows, qualified, {key: value})
        cur.execute(
            f"ALTER TABLE {schema}.{stage} ADD CONSTRAINT _msp_slice CHECK ({key} IS NOT NULL AND {key} = {literal})"
        )
        primary = _pg_primary_key(cur, schema, table)
        if primary:
            cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
            cur.execute(f"ALTER TABLE {schema}.{stage} ADD CONSTRAINT {stage}_pkey PRIMARY KEY ({', '.join(primary)})")
        staged = time.perf_counter()
        fault_point(WAREHOUSE_BEFORE_SWAP, before_swap)
        for partition, is_default in _pg_partitions(cur, schema, table):
            if is_default:
                cur.execute(f"DELETE FROM ONLY {schema}.{partition} WHERE {key} = {literal}")
            elif partition == part:
                cur.execute(f"DROP TABLE {schema}.{partition}")
        cur.execute(f"ALTER TABLE {schema}.{stage} RENAME TO {part}")
        if primary:
            cur.execute(f"ALTER INDEX {schema}.{stage}_pkey RENAME TO {part[:58]}_pkey")
        cur.execute(f"ALTER TABLE {qualified} ATTACH PARTITION {schema}.{part} FOR VALUES IN ({literal})")
        con.commit()
        log.debug(
            "%s: staged %d rows in %.2f s, swapped partition %s in %.2f s",
            qualified,
            rows,
            staged - started,
            part,
            time.perf_counter() - staged,
        )
        return rows

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


def _pg_list_partition_key(cur: Any, schema: str, table: str) -> str | None:
    """The key column of ``schema.table`` if it is LIST-partitioned by one column, else None."""
    cur.execute(
        "SELECT a.attname FROM pg_partitioned_table AS p "
        "JOIN pg_class AS c ON c.oid = p.partrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace "
        "JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0] "
        "WHERE n.nspname = %s AND c.relname = %s AND p.partstrat = 'l' AND p.partnatts = 1",
        [schema, table],
    )
    found = cur.fetchone()
    return found[0] if found else None


def _pg_primary_key(cur: Any, schema: str, table: str) -> list[str]:
    """The primary key columns of ``schema.table``, in key order."""
    cur.execute(
        "SELECT a.attname FROM pg_index AS i "
        "JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey::int2[], a.attnum)",
        [f"{schema}.{table}"],
    )
    return [r[0] for r in cur.fetchall()]


def _pg_partitions(cur: Any, schema: str, table: str) -> list[tuple[str, bool]]:
    """(name, is the DEFAULT partition) of every partition of ``schema.table``."""
    cur.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' FROM pg_inherits AS i "
        "JOIN pg_class AS c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        [f"{schema}.{table}"],
    )
    return [(r[0], bool(r[1])) for r in cur.fetchall()]


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _require_inside(inside: int, rows: int, qualified: str, where: dict[str, Any]) -> None:
    if inside != rows:
        raise ValueError(
            f"{qualified}: {inside} rows in the slice {where} after the write, expected {rows} "
            "(frame rows outside the slice, or duplicate keys); nothing was changed"
        )


def _duckdb_key_and_columns(con: Any, schema: str, table: str) -> tuple[list[str], list[str]]:
    """Primary-key columns (empty if none) and all columns of a DuckDB table."""
    found = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() "
        "WHERE schema_name = ? AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
        [schema, table],
    ).fetchall()
    columns = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
        [schema, table],
    ).fetchall()
    return (list(found[0][0]) if found else []), [c[0] for c in columns]


def _column_names(frame: Frame) -> list[str]:
    return list(frame.column_names) if hasattr(frame, "column_names") else list(frame.columns)


def _num_rows(frame: Frame) -> int:
    return frame.num_rows if hasattr(frame, "num_rows") else len(frame)


def _batches(frame: Frame, size: int) -> Iterator[pa.RecordBatch]:
    """``frame`` as Arrow record batches of at most ``size`` rows (pandas converted chunk by chunk)."""
    import pyarrow as pa

    if isinstance(frame, pa.Table):
        yield from frame.to_batches(max_chunksize=size)
        return
    for start in range(0, len(frame), size):
        yield pa.RecordBatch.from_pandas(frame.iloc[start : start + size], preserve_index=False)


# --- PostgreSQL COPY ------------------------------------------------------------------------------

_PG_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_PG_TRAILER = struct.pack(">h", -1)
_PG_EPOCH_DAYS = 10_957  # 2000-01-01, PostgreSQL's epoch, in days since 1970-01-01
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400 * 1_000_000
_TEXT_OIDS = {25, 1043}  # text, varchar
# fixed-width PostgreSQL types: OID -> big-endian numpy dtype of the binary value
_FIXED_OIDS = {
    16: ">u1",  # boolean
    20: ">i8",  # bigint
    21: ">i2",  # smallint
    23: ">i4",  # integer
    700: ">f4",  # real
    701: ">f8",  # double precision
    1082: ">i4",  # date: days since 2000-01-01
    1114: ">i8",  # timestamp: microseconds since 2000-01-01 (a tz-aware value is written as UTC)
    1184: ">i8",  # timestamptz: microseconds since 2000-01-01 UTC (a naive value is taken as UTC)
}


def _copy_frame(cur: Any, copy_sql: str, oids: list[int], frame: Frame) -> None:
    """Stream ``frame`` through ``copy_sql``: binary tuples when every column type is known, else CSV."""
    from psycopg.copy import QueuedLibpqWriter

    binary = all(oid in _TEXT_OIDS or oid in _FIXED_OIDS for oid in oids)
    if not binary:
        log.info("COPY as CSV: a column type (OIDs %s) has no binary encoder here", oids)
    # the writer thread sends while this thread encodes the next chunk; its queue holds <= 128 MiB
    with cur.copy(copy_sql + (" (FORMAT BINARY)" if binary else " (FORMAT CSV)"), writer=QueuedLibpqWriter(cur)) as cp:
        if binary:
            cp.write(_PG_SIGNATURE)
        for batch in _batches(frame, COPY_CHUNK_ROWS):
            if batch.num_rows:
                cp.write(_binary_tuples(batch, oids) if binary else _csv_rows(batch))
        if binary:
            cp.write(_PG_TRAILER)


def _csv_rows(batch: pa.RecordBatch) -> memoryview:
    """CSV without header: strings quoted, NULL as an unquoted empty field (PostgreSQL's CSV rules)."""
    import io

    import pyarrow.csv as pacsv

    sink = io.BytesIO()
    pacsv.write_csv(batch, sink, pacsv.WriteOptions(include_header=False))
    return sink.getbuffer()


def _binary_tuples(batch: pa.RecordBatch, oids: list[int]) -> memoryview:
    """The rows of ``batch`` as COPY BINARY tuples: field count, then (int32 length or -1, bytes) per field.

    Built column-wise: runs of fixed-width bytes (field count, lengths, non-null fixed values) are stacked
    with numpy, then Arrow joins them with the variable-length text fields, row by row, in C++.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = batch.num_rows
    parts: list[pa.Array] = []
    run: list[np.ndarray] = [_be_bytes(np.full(n, len(oids)), ">i2")]

    def close_run() -> None:
        if run:
            parts.append(_fixed_binary(np.hstack(run)))
            run.clear()

    for arr, oid in zip(batch.columns, oids, strict=True):
        if oid in _TEXT_OIDS:
            text = pc.cast(arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string()), pa.large_binary())
            run.append(_be_bytes(pc.fill_null(pc.binary_length(text), -1).to_numpy(), ">i4"))
            close_run()
            parts.append(text)
            continue
        dtype = np.dtype(_FIXED_OIDS[oid])
        values = _be_bytes(_fixed_values(arr, oid), dtype)
        if arr.null_count == 0:
            run += [_be_bytes(np.full(n, dtype.itemsize), ">i4"), values]
        else:
            valid = arr.is_valid()
            run.append(_be_bytes(np.where(valid.to_numpy(zero_copy_only=False), dtype.itemsize, -1), ">i4"))
            close_run()
            parts.append(pc.if_else(valid, _fixed_binary(values), pa.scalar(b"", pa.large_binary())))
    close_run()
    rows = pc.binary_join_element_wise(
        *parts, pa.scalar(b"", pa.large_binary()), null_handling="replace", null_replacement=""
    )
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)[rows.offset : rows.offset + n + 1]
    return memoryview(rows.buffers()[2])[offsets[0] : offsets[-1]]


def _fixed_values(arr: pa.Array, oid: int) -> Any:
    """Numeric values (nulls as 0) of ``arr`` cast for the PostgreSQL type ``oid``, in its binary units."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if oid == 1082:
        days = pc.cast(pc.cast(arr, pa.date32()), pa.int32())
        return pc.fill_null(days, 0).to_numpy() - _PG_EPOCH_DAYS
    if oid in (1114, 1184):
        if pa.types.is_timestamp(arr.type):  # to microseconds, truncating nanoseconds like PostgreSQL would round
            stamps = pc.cast(arr, pa.timestamp("us", arr.type.tz), safe=False)
        else:
            stamps = pc.cast(arr, pa.timestamp("us"))
        return pc.fill_null(pc.cast(stamps, pa.int64()), 0).to_numpy() - _PG_EPOCH_US
    target = {16: pa.uint8(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 700: pa.float32(), 701: pa.float64()}
    source = pc.cast(arr, pa.bool_()) if oid == 16 and not pa.types.is_boolean(arr.type) else arr
    return pc.fill_null(pc.cast(source, target[oid]), 0).to_numpy()


def _be_bytes(values: Any, dtype: Any) -> Any:
    """An (n, itemsize) uint8 view of ``values`` as big-endian ``dtype``."""
    import numpy as np

    out = np.ascontiguousarray(values, dtype=dtype)
    return out.view(np.uint8).reshape(len(out), out.dtype.itemsize)


def _fixed_binary(block: Any) -> pa.Array:
    """Rows of an (n, w) uint8 array as a large_binary Arrow array of n values of w bytes."""
    import numpy as np
    import pyarrow as pa

    block = np.ascontiguousarray(block)
    n, width = block.shape
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, pa.py_buffer(block)])
    return fixed.cast(pa.large_binary())
