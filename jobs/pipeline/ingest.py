"""ingest: landing -> bronze. Raw rows with an explicit schema, malformed records kept with their text.

Text formats (CSV, JSON lines) are read as strings, so a bad value reaches cleaning and is
quarantined with its own reason instead of failing the parse; Parquet keeps its types. Every
row gets load metadata: ``_source_file``, ``_ingested_at``, ``_row_hash``. Schema drift is
checked per file against the contract (see docs/INGESTION.md).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from jobs.contracts import SOURCES, Source
from jobs.pipeline.lake import PipelineError, ds_range, layer_path, partition_path, write_partitions
from jobs.pipeline.textfiles import foreign_encoding, is_gzip, open_text, read_head
from jobs.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)
CORRUPT = "_corrupt_record"
#: file names per format; text formats may be gzip-compressed (Spark decompresses ``.gz`` by name)
EXTENSIONS = {
    "csv": (".csv", ".csv.gz"),
    "jsonl": (".jsonl", ".json", ".jsonl.gz", ".json.gz"),
    "parquet": (".parquet",),
}
JSON_SAMPLE_LINES = 1000  # JSON-lines drift: the keys of the first this many records
OTHER_DELIMITERS = (";", "\t", "|")


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


def _is_data_file(source: Source, path: Path) -> bool:
    return path.name.endswith(EXTENSIONS[source.fmt]) or (path.name.startswith(HTTP_PAGE) and path.suffix == ".jsonl")


def _partition_files(settings: Settings, source: Source, ds: str) -> list[Path]:
    """Every file of the landing partition except hidden and state files (``.*``, ``_*``), in name order."""
    folder = partition_path(settings, "landing", source.name, ds)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "_")))


def landing_files(settings: Settings, source: Source, ds: str) -> list[Path]:
    """The partition's data files in name order (hidden and state files are not data).

    Files in the table's own format (text formats also gzip-compressed), plus the REST source's
    ``http-page-*.jsonl`` pages.
    """
    return [p for p in _partition_files(settings, source, ds) if _is_data_file(source, p)]


def ignored_files(settings: Settings, source: Source, ds: str) -> list[Path]:
    """Files of the partition that are not data files of the table's format (ingest warns about them)."""
    return [p for p in _partition_files(settings, source, ds) if not _is_data_file(source, p)]


def raw_schema(source: Source) -> StructType:
    """Bronze schema of a text source: every contract column as a string, plus the corrupt record."""
    from pyspark.sql import types as T

    fields = [T.StructField(c.name, T.StringType()) for c in source.columns]
    for name, cols in source.nested.items():
        item = T.StructType([T.StructField(c.name, T.StringType()) for c in cols])
        fields.append(T.StructField(name, T.ArrayType(item)))
    return T.StructType([*fields, T.StructField(CORRUPT, T.StringType())])


def check_drift(source: Source, path: Path) -> list[str]:
    """Check a file before Spark reads it; raise on what cannot be read right, return warnings.

    Text files: empty files are warned about; a UTF-16/32 file, a CSV header split by another
    delimiter, and a CSV whose first line is not a header fail. Then the columns are compared
    with the contract: extra columns are dropped with a warning, missing optional columns become
    nulls with a warning, a missing required column (a renamed one looks like this) fails, and so
    does a Parquet column whose type cannot hold the contract's.
    """
    fmt = file_format(source, path)
    if fmt == "parquet":
        found = _parquet_columns(source, path)
    else:
        try:
            head = read_head(path)
        except EOFError as exc:
            raise PipelineError(f"{path}: truncated gzip file ({exc})") from exc
        except OSError as exc:  # gzip.BadGzipFile is an OSError
            raise PipelineError(f"{path}: not a readable gzip file ({exc})") from exc
        if not head.strip():
            return [f"{path.name}: empty file ({len(head)} bytes), no rows"]
        if encoding := foreign_encoding(head):
            raise PipelineError(
                f"{path}: wrong encoding: the file is {encoding}; landing files must be UTF-8 (export it as UTF-8)"
            )
        if fmt == "csv":
            found = _csv_columns(source, path)
        else:
            found = _json_keys(path)
            if found is None:  # no parseable record: Spark quarantines every line as malformed
                return []
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


def _first_line(path: Path) -> str:
    """A text file's first line, without its line break and a UTF-8 byte-order mark."""
    with open_text(path) as fh:
        return fh.readline().rstrip("\r\n").lstrip("\ufeff")


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV file's first line."""
    header = _first_line(path)
    return [h.strip() for h in header.split(",")] if header else []


def _csv_columns(source: Source, path: Path) -> list[str]:
    """The header's columns; a header split by another delimiter, or a data line instead of a header, fails."""
    header = _first_line(path)
    names = [h.strip() for h in header.split(",")]
    expected = source.column_names
    if not set(names) & set(expected):
        for delimiter in OTHER_DELIMITERS:
            parts = [p.strip() for p in header.split(delimiter)]
            if len(parts) > 1 and set(parts) & set(expected):
                raise PipelineError(
                    f"{path}: wrong delimiter: the header is separated by {delimiter!r}, the contract's CSV "
                    f"files by ','; header {parts}"
                )
        if not {n.lower() for n in names} & set(expected):  # the values are not shown: they may be PII
            raise PipelineError(
                f"{path}: no header: none of the {len(names)} field(s) of the first line is a column of "
                f"{source.name} {expected}; the first line must be the header"
            )
    return names


def _json_keys(path: Path) -> list[str] | None:
    """Keys of the first parseable records of a JSON-lines file, in first-seen order (None if there is none).

    A key missing from some records only is a null in those (quarantined per the contract); the
    union of the first :data:`JSON_SAMPLE_LINES` lines decides what counts as a missing column.
    """
    keys: dict[str, None] = {}
    seen = False
    with open_text(path) as fh:
        for line in itertools.islice(fh, JSON_SAMPLE_LINES):
            try:
                record = json.loads(line.lstrip("\ufeff"))
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                keys.update(dict.fromkeys(record))
                seen = True
    return list(keys) if seen else None


def _parquet_columns(source: Source, path: Path) -> list[str]:
    """The file's columns; a zero-byte or unreadable file, or a column of an incompatible type, fails."""
    schema = _parquet_schema(path)
    wrong = [
        f"{c.name} is {schema.field(c.name).type}, the contract needs {c.type}"
        for c in source.columns
        if c.name in schema.names and not _compatible(schema.field(c.name).type, c.type)
    ]
    if wrong:
        raise PipelineError(f"{path}: schema drift: column type(s) incompatible with the contract: {'; '.join(wrong)}")
    return schema.names


def _parquet_schema(path: Path) -> pa.Schema:
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise PipelineError(f"{path}: zero-byte file, not Parquet (an interrupted export?)")
    try:
        return pq.read_schema(path)
    except Exception as exc:
        raise PipelineError(f"{path}: not a readable Parquet file ({exc})") from exc


def _compatible(kind: pa.DataType, contract_type: str) -> bool:
    """Whether a Parquet column of Arrow type ``kind`` casts losslessly enough to the contract's Spark type."""
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_null(kind):
        return True
    checks = {
        "string": (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer),
        "double": (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal),
        "int": (pa.types.is_integer,),
        "boolean": (pa.types.is_boolean,),
        "timestamp": (pa.types.is_timestamp, pa.types.is_date),
        "date": (pa.types.is_date, pa.types.is_timestamp),
    }
    return any(check(kind) for check in checks.get(contract_type, ()))


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
            names = csv_header(path)
            if names == source.column_names or not names:
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
    # Spark reads a set of Parquet files with one file's schema: files whose contract columns differ
    # (one without an optional column, an int64 where others have double) are read group by group
    # and cast to the contract's types, so no column is lost or mistyped by the mix.
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for path in files:
        schema = _parquet_schema(path)
        layout = tuple((c.name, str(schema.field(c.name).type)) for c in source.columns if c.name in schema.names)
        groups.setdefault(layout, []).append(str(path))
    out = None
    for layout, group in groups.items():
        present = {name for name, _ in layout}
        df = spark.read.parquet(*group)
        cols = [
            (F.col(c.name) if c.name in present else F.lit(None)).cast(c.type).alias(c.name) for c in source.columns
        ]
        frame = df.select(
            *cols, F.lit(None).cast("string").alias(CORRUPT), F.col("_metadata.file_path").alias("_source_file")
        )
        out = frame if out is None else out.unionByName(frame)
    assert out is not None
    return out


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
    for path in (p for d in dates for p in ignored_files(settings, source, d)):
        warnings.append(f"{path.name}: ignored, not a {source.fmt} file ({', '.join(EXTENSIONS[source.fmt])})")
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
    except Exception as exc:  # name the file that cannot be read, and why
        culprit, cause = read_error(exc)
        culprit = culprit or _culprit(spark, source, files) or ", ".join(map(str, files))
        raise PipelineError(f"{table}: cannot read {culprit}: {cause}") from exc
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


def read_error(exc: Exception) -> tuple[str | None, str]:
    """The file a failed Spark read names (None if it names none) and the cause, in one line.

    Spark's message starts with the Py4J call ("An error occurred while calling o63.count") and
    hides the cause in the Java trace: take the file from ``FAILED_READ_FILE`` and the innermost
    ``Caused by``, and say in words what a truncated or fake gzip file is.
    """
    text = str(exc)
    found = re.search(r"while reading file (\S+?)\.?\s", text)
    path = unquote(re.sub(r"^file:/+", "/", found.group(1))) if found else None
    causes = re.findall(r"Caused by: ([\w.$]+): ([^\n]*)", text)
    if path and is_gzip(Path(path)):
        if any(name.endswith("EOFException") for name, _ in causes):
            return path, "truncated gzip file (unexpected end of the compressed stream)"
        if any("gzip" in message.lower() or "header" in message.lower() for _, message in causes):
            return path, "not a valid gzip file (" + causes[-1][1].strip() + ")"
    if causes:
        name, message = causes[-1]
        return path, f"{name.rsplit('.', 1)[-1]}: {message.strip()}"[:500]
    error_class = re.search(r"(\[[A-Z_.]+\][^\n]*)", text)
    return path, (error_class.group(1) if error_class else text.splitlines()[0] if text else repr(exc))[:500]
