"""ingest: landing -> bronze. Raw rows with an explicit schema, malformed records kept with their text.

Text formats (CSV, JSON lines) are read as strings, so a bad value reaches cleaning and is
quarantined with its own reason instead of failing the parse; Parquet keeps its types. Every
row gets load metadata: ``_source_file``, ``_ingested_at``, ``_row_hash``. Schema drift is
checked per file against the contract (see docs/INGESTION.md).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.contracts import SOURCES, Source
from jobs.pipeline.lake import PipelineError, ds_range, layer_path, partition_path, write_partitions
from jobs.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)
CORRUPT = "_corrupt_record"
EXTENSIONS = {"csv": (".csv",), "jsonl": (".jsonl", ".json"), "parquet": (".parquet",)}


@dataclass
class IngestResult:
    table: str
    dates: list[str]
    files: list[str]
    rows_by_ds: dict[str, int]
    malformed: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds per action

    @property
    def rows(self) -> int:
        return sum(self.rows_by_ds.values())


HTTP_PAGE = "http-page-"  # pages pulled from the REST source are JSON lines, whatever the table's format


def file_format(source: Source, path: Path) -> str:
    return "jsonl" if path.name.startswith(HTTP_PAGE) else source.fmt


def landing_files(settings: Settings, source: Source, ds: str) -> list[Path]:
    """The partition's data files in name order (hidden and state files are not data).

    Files in the table's own format, plus the REST source's ``http-page-*.jsonl`` pages.
    """
    folder = partition_path(settings, "landing", source.name, ds)
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith((".", "_"))
        and (p.suffix in EXTENSIONS[source.fmt] or (p.name.startswith(HTTP_PAGE) and p.suffix == ".jsonl"))
    )


def raw_schema(source: Source) -> StructType:
    """Bronze schema of a text source: every contract column as a string, plus the corrupt record."""
    from pyspark.sql import types as T

    fields = [T.StructField(c.name, T.StringType()) for c in source.columns]
    for name, cols in source.nested.items():
        item = T.StructType([T.StructField(c.name, T.StringType()) for c in cols])
        fields.append(T.StructField(name, T.ArrayType(item)))
    return T.StructType([*fields, T.StructField(CORRUPT, T.StringType())])


def check_drift(source: Source, path: Path) -> list[str]:
    """Compare a file's columns with the contract; raise on a missing required column.

    Extra columns are dropped with a warning, missing optional columns become nulls with a
    warning, a missing required column (a renamed one looks like this) fails the ingest.
    """
    fmt = file_format(source, path)
    if fmt == "csv":
        with open(path, encoding="utf-8", errors="replace") as fh:
            header = fh.readline().rstrip("\r\n").lstrip("\ufeff")
        found = [h.strip() for h in header.split(",")] if header else []
    elif fmt == "jsonl":
        found = _json_keys(path)
        if found is None:
            return []
    else:
        import pyarrow.parquet as pq

        try:
            found = pq.read_schema(path).names
        except Exception as exc:
            raise PipelineError(f"{path}: not a readable Parquet file ({exc})") from exc
    expected = source.column_names + list(source.nested)
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    required = {c.name for c in source.columns if c.required}
    if missing_required := [c for c in missing if c in required]:
        raise PipelineError(
            f"{path}: schema drift: required column(s) {missing_required} missing"
            + (f"; unexpected column(s) {extra} (renamed?)" if extra else "")
            + f"; the contract of {source.name} is {expected}"
        )
    warnings = []
    if extra:
        warnings.append(f"{path.name}: extra column(s) {extra} dropped")
    if missing:
        warnings.append(f"{path.name}: optional column(s) {missing} missing, read as null")
    if fmt == "csv" and found != expected and not missing and not extra:
        warnings.append(f"{path.name}: columns in another order, mapped by name")
    return warnings


def _json_keys(path: Path) -> list[str] | None:
    """Keys of the first parseable record of a JSON-lines file (None if there is none)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                return list(record)
    return None


def extract(spark: SparkSession, source: Source, files: list[Path]) -> DataFrame:
    """Read the files with the contract's schema (text as strings); REST pages are read as JSON lines."""
    pages = [p for p in files if file_format(source, p) == "jsonl" and source.fmt != "jsonl"]
    own = [p for p in files if p not in pages]
    frames = []
    if own:
        frames.append(_extract_format(spark, source, source.fmt, own))
    if pages:
        frames.append(_extract_pages(spark, source, pages))
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def _extract_pages(spark: SparkSession, source: Source, pages: list[Path]) -> DataFrame:
    """REST pages of a table whose files are CSV or Parquet: JSON lines read with all-string columns."""
    from pyspark.sql import functions as F

    df = spark.read.json(
        [str(p) for p in pages], schema=raw_schema(source), mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT
    )
    if source.fmt == "parquet":  # typed like the Parquet files they are unioned with
        df = df.select(*[F.col(c.name).try_cast(c.type).alias(c.name) for c in source.columns], CORRUPT)
    return df.select("*", F.col("_metadata.file_path").alias("_source_file"))


def _extract_format(spark: SparkSession, source: Source, fmt: str, files: list[Path]) -> DataFrame:
    """Read files of one format with the contract's schema."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    paths = [str(p) for p in files]
    if fmt == "csv":
        frames = []
        for path in files:  # a file whose header differs from the contract is mapped by name
            header = path.open(encoding="utf-8", errors="replace").readline().rstrip("\r\n").lstrip("\ufeff")
            names = [h.strip() for h in header.split(",")]
            if names == source.column_names:
                frames.append(None)
                continue
            schema = T.StructType(
                [T.StructField(n, T.StringType()) for n in names] + [T.StructField(CORRUPT, T.StringType())]
            )
            df = _read_csv(spark, [str(path)], schema)
            cols = [F.col(c) if c in names else F.lit(None).cast("string").alias(c) for c in source.column_names]
            frames.append(df.select(*cols, CORRUPT, F.col("_metadata.file_path").alias("_source_file")))
        standard = [str(p) for p, f in zip(files, frames, strict=True) if f is None]
        out = None
        if standard:
            out = _read_csv(spark, standard, raw_schema(source)).select(
                "*", F.col("_metadata.file_path").alias("_source_file")
            )
        for f in frames:
            if f is not None:
                out = f if out is None else out.unionByName(f)
        assert out is not None
        return out
    if fmt == "jsonl":
        df = spark.read.json(
            paths,
            schema=raw_schema(source),
            mode="PERMISSIVE",
            columnNameOfCorruptRecord=CORRUPT,
            encoding="UTF-8",
        )
        return df.select("*", F.col("_metadata.file_path").alias("_source_file"))
    df = spark.read.parquet(*paths)
    cols = []
    for c in source.columns:
        cols.append(F.col(c.name) if c.name in df.columns else F.lit(None).cast(c.type).alias(c.name))
    return df.select(
        *cols, F.lit(None).cast("string").alias(CORRUPT), F.col("_metadata.file_path").alias("_source_file")
    )


def _read_csv(spark: SparkSession, paths: list[str], schema: StructType) -> DataFrame:
    return spark.read.csv(
        paths,
        header=True,
        schema=schema,
        mode="PERMISSIVE",
        columnNameOfCorruptRecord=CORRUPT,
        enforceSchema=True,
        encoding="UTF-8",
        multiLine=False,
    )


def with_load_metadata(df: DataFrame, ingested_at: datetime) -> DataFrame:
    """Pure transform: add ``ds`` (from the file's partition folder), ``_ingested_at`` and
    ``_row_hash`` (64-bit xxHash of the raw record, hex: lineage and a deterministic tie-break)."""
    from pyspark.sql import functions as F

    data_cols = [c for c in df.columns if c not in {"_source_file"}]
    return (
        df.withColumn("ds", F.regexp_extract("_source_file", r"/ds=(\d{4}-\d{2}-\d{2})/", 1))
        .withColumn("_ingested_at", F.lit(ingested_at).cast("timestamp"))
        .withColumn("_row_hash", F.lpad(F.hex(F.xxhash64(*[F.col(c) for c in data_cols])), 16, "0"))
    )


def ingest(spark: SparkSession, settings: Settings, table: str, ds: str, since: str | None = None) -> IngestResult:
    """Landing partitions ``since``..``ds`` of ``table`` -> the same bronze partitions (replaced)."""
    from pyspark.sql import functions as F

    t0 = time.perf_counter()
    dates = ds_range(ds, since)
    source = SOURCES[table]
    files = [f for d in dates for f in landing_files(settings, source, d)]
    warnings: list[str] = []
    phases: dict[str, float] = {}
    for path in files:
        warnings.extend(check_drift(source, path))
    for w in warnings:
        log.warning("%s: %s", table, w)
    empty = [d for d in dates if not landing_files(settings, source, d)]
    if empty:
        log.warning(
            "%s: no landing files for %d date(s) (%s...): those bronze partitions are emptied",
            table,
            len(empty),
            empty[0],
        )
    root = layer_path(settings, "bronze", table)
    try:
        if files:
            from pyspark import StorageLevel

            bronze = with_load_metadata(extract(spark, source, files), datetime.now(UTC).replace(tzinfo=None))
            bronze = bronze.persist(StorageLevel.MEMORY_AND_DISK)  # parsed once: counted, written, checked
            t1 = time.perf_counter()
            bronze.count()
            phases["parse files, hash rows (persisted)"] = round(time.perf_counter() - t1, 2)
            t1 = time.perf_counter()
            counts = write_partitions(spark, bronze, root, dates)
            phases["write bronze Parquet"] = round(time.perf_counter() - t1, 2)
            malformed = bronze.where(F.col(CORRUPT).isNotNull()).count()
            bronze.unpersist()
        else:
            counts = write_partitions(spark, spark.range(0).selectExpr("CAST(NULL AS STRING) AS ds"), root, dates)
            malformed = 0
    except PipelineError:
        raise
    except Exception as exc:  # name the file that cannot be read
        raise PipelineError(
            f"{table}: cannot read {_culprit(spark, source, files) or files}: {str(exc).splitlines()[0][:300]}"
        ) from exc
    result = IngestResult(
        table, dates, [str(p) for p in files], counts, malformed, time.perf_counter() - t0, warnings, phases
    )
    log.info(
        "ingest %s %s..%s: %d files, %d rows (%d malformed) in %.1f s",
        table,
        dates[0],
        dates[-1],
        len(files),
        result.rows,
        malformed,
        result.seconds,
    )
    return result


def _culprit(spark: SparkSession, source: Source, files: list[Path]) -> str | None:
    """On a failed read, find the first file that fails on its own."""
    for path in files:
        try:
            extract(spark, source, [path]).count()
        except Exception:
            return str(path)
    return None
