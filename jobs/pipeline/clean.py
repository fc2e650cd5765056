"""clean: bronze -> silver + quarantine. Typed, validated, deduplicated, imputed, PII hashed.

:func:`clean_frame` is the pure transform (DataFrames in, DataFrames out); :func:`clean` reads
the bronze partition, runs it, validates silver with Great Expectations and only then replaces
the silver and quarantine partitions, so a failed check leaves the previous partition intact.
Every bronze row ends in exactly one of silver or quarantine (with a machine-readable reason).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jobs.contracts import EARLIEST_DATE, MAX_TEXT_CHARS, SOURCES, Column, Source
from jobs.pipeline.ingest import CORRUPT
from jobs.pipeline.lake import (
    checkpoint,
    ds_range,
    layer_path,
    parquet_rows,
    read_range,
    read_upto,
    release,
    write_partitions,
)
from jobs.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)
QUARANTINE_COLUMNS = ("table", "reason", "key", "raw", "_source_file", "_ingested_at", "_row_hash")
EMAIL_RE = r"[^\s,;\"']+@[^\s,;\"']+"
REPLACEMENT_CHAR = "\ufffd"  # what a byte that is not UTF-8 decodes to


@dataclass
class CleanResult:
    table: str
    dates: list[str]
    bronze_rows: int
    silver_rows: dict[str, int]  # by ds
    quarantined: dict[str, int]  # by reason
    seconds: float
    validation: dict = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)  # seconds per action, where the time goes

    @property
    def silver_total(self) -> int:
        return sum(self.silver_rows.values())

    @property
    def quarantined_rows(self) -> int:
        return sum(self.quarantined.values())


def _normalised(df: DataFrame, c: Column) -> SparkColumn:
    """Trimmed (and lower-cased where the contract says so) value; empty text is null."""
    from pyspark.sql import functions as F

    col = F.col(c.name)
    if dict(df.dtypes).get(c.name) != "string":
        return col
    text = F.trim(col)
    text = F.when(text == "", None).otherwise(text)
    return F.lower(text) if c.lower else text


def _typed(df: DataFrame, c: Column) -> SparkColumn:
    value = _normalised(df, c)
    return value if c.type == "string" else value.try_cast(c.type)


def _prepare(df: DataFrame, source: Source) -> DataFrame:
    """Compute every column's normalised (``__n_``) and typed (``__t_``) value once, for all rules."""
    from pyspark.sql import functions as F

    extra = []
    for c in source.columns:
        extra += [_normalised(df, c).alias(f"__n_{c.name}"), _typed(df, c).alias(f"__t_{c.name}")]
    return df.select("*", *extra).withColumn("_row_id", F.monotonically_increasing_id())


def _n(c: Column) -> SparkColumn:
    from pyspark.sql import functions as F

    return F.col(f"__n_{c.name}")


def _t(c: Column) -> SparkColumn:
    from pyspark.sql import functions as F

    return F.col(f"__t_{c.name}")


def _single_row_rules(df: DataFrame, source: Source) -> list[tuple[SparkColumn, str]]:
    """(condition, reason) pairs checkable on a row alone, in the order they are reported.

    A timestamp is in the future when it is on or after the day after next of the row's
    partition date (ds + 2 days), which leaves a day for time zones and late exports.
    """
    from pyspark.sql import functions as F

    limit = F.date_add(F.col("ds").cast("date"), 2)
    rules: list[tuple[SparkColumn, str]] = []
    for c in source.columns:
        if c.required or c.name in source.key:
            rules.append((_n(c).isNull(), f"null_required:{c.name}"))
    for c in source.columns:
        if dict(df.dtypes).get(c.name) == "string":
            rules.append((F.length(F.col(c.name)) > MAX_TEXT_CHARS, f"too_long:{c.name}"))
    for c in source.columns:
        if c.type != "string":
            rules.append((_n(c).isNotNull() & _t(c).isNull(), f"wrong_type:{c.name}"))
    for name, cols in source.nested.items():
        for c in cols:
            if c.type != "string":
                bad = F.exists(F.col(name), _item_wrong_type(c))
                rules.append((bad, f"wrong_type:{name}.{c.name}"))
    for c in source.columns:
        typed = _t(c)
        if c.enum:
            rules.append((typed.isNotNull() & ~typed.isin(list(c.enum)), f"invalid_value:{c.name}"))
        if c.min is not None:
            rules.append((typed < F.lit(c.min), f"out_of_range:{c.name}"))
        if c.max is not None:
            rules.append((typed > F.lit(c.max), f"out_of_range:{c.name}"))
        if c.max_sql is not None:
            rules.append((typed > F.expr(c.max_sql), f"out_of_range:{c.name}"))
        if c.future_check:
            rules.append((typed < F.lit(EARLIEST_DATE).cast(c.type), f"out_of_range:{c.name}"))
    for name, cols in source.nested.items():
        for c in cols:
            if c.min is not None:
                bad = F.exists(F.col(name), _item_below_min(c))
                rules.append((bad, f"out_of_range:{name}.{c.name}"))
    for c in source.columns:
        if c.future_check:
            typed = _t(c)
            bound = limit if c.type == "date" else limit.cast("timestamp")
            rules.append((typed >= bound, f"future_timestamp:{c.name}"))
    return rules


def _mangled(text: SparkColumn) -> SparkColumn:
    """Text that is not valid UTF-8, or holds U+FFFD (what the CSV reader decodes a foreign byte to)."""
    from pyspark.sql import functions as F

    return ~F.is_valid_utf8(text) | text.contains(REPLACEMENT_CHAR)


def _encoding_rule(df: DataFrame, source: Source) -> SparkColumn:
    """True where the raw record holds bytes that are not UTF-8.

    Text is read as UTF-8: the CSV reader turns a Latin-1 or Windows-1252 byte into U+FFFD, so the
    row goes to quarantine as ``invalid_encoding`` instead of landing with mangled text. (The JSON
    reader cannot parse such a line at all: it is a ``malformed_record``, checked first, whose raw
    bytes quarantine stores as valid UTF-8.) A U+FFFD already in the source means the text was lost
    upstream: the same. Checked on every text column, so a Parquet writer that skipped UTF-8
    validation cannot put bytes into silver that pyarrow and DuckDB refuse to read.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    fields = {f.name: f.dataType for f in df.schema.fields}
    checks = [_mangled(F.col(c.name)) for c in source.columns if fields.get(c.name) == T.StringType()]
    for name, cols in source.nested.items():
        kind = fields.get(name)
        if isinstance(kind, T.ArrayType) and isinstance(kind.elementType, T.StructType):
            text = [c.name for c in cols if kind.elementType[c.name].dataType == T.StringType()]
            checks += [F.exists(F.col(name), _item_mangled(c)) for c in text]
    out = F.lit(False)
    for check in checks:
        out = out | F.coalesce(check, F.lit(False))
    return out


def _item_mangled(name: str) -> Callable[[SparkColumn], SparkColumn]:
    return lambda x: _mangled(x[name])


# Spark counts a lambda's parameters to choose (x) or (x, index): build one-parameter closures.
def _item_wrong_type(c: Column) -> Callable[[SparkColumn], SparkColumn]:
    return lambda x: x[c.name].isNotNull() & x[c.name].try_cast(c.type).isNull()


def _item_below_min(c: Column) -> Callable[[SparkColumn], SparkColumn]:
    from pyspark.sql import functions as F

    return lambda x: x[c.name].try_cast(c.type) < F.lit(c.min)


def _typed_item(nested: tuple[Column, ...]) -> Callable[[SparkColumn], SparkColumn]:
    from pyspark.sql import functions as F

    return lambda x: F.struct(
        *[(F.trim(x[c.name]) if c.type == "string" else x[c.name].try_cast(c.type)).alias(c.name) for c in nested]
    )


def _first_reason(rules: list[tuple[SparkColumn, str]]) -> SparkColumn:
    from pyspark.sql import functions as F

    if not rules:
        return F.lit(None).cast("string")
    return F.coalesce(*[F.when(cond, F.lit(reason)) for cond, reason in rules])


def _fk_reasons(df: DataFrame, source: Source, dims: dict[str, DataFrame]) -> DataFrame:
    """Add ``_fk_reason``: the first foreign key (top level, then nested) with no match in silver.

    ``dims`` hold each referenced key with the first date it appears in silver, so a row only
    matches keys known on or before its own partition date (point in time).
    """
    from pyspark.sql import functions as F

    out = df
    checks = []
    for c in source.columns:
        if c.fk and c.fk in dims:
            keys = dims[c.fk].select(F.col("key").alias(f"_fk_{c.name}"), F.col("first_ds").alias(f"_fkd_{c.name}"))
            cond = (F.col(c.name) == F.col(f"_fk_{c.name}")) & (F.col(f"_fkd_{c.name}") <= F.col("ds"))
            out = out.join(F.broadcast(keys), cond, "left")
            checks.append((F.col(c.name).isNotNull() & F.col(f"_fk_{c.name}").isNull(), f"unknown_fk:{c.name}"))
    for name, cols in source.nested.items():
        for c in cols:
            if c.fk and c.fk in dims:
                items = out.select("_row_id", "ds", F.explode(F.col(name)).alias("_item")).select(
                    "_row_id", "ds", F.trim(F.col(f"_item.{c.name}")).alias("key")
                )
                known = items.join(F.broadcast(dims[c.fk]), "key", "left").select(
                    "_row_id",
                    (F.col("first_ds").isNull() | (F.col("first_ds") > F.col("ds"))).alias("_unknown"),
                )
                bad = known.where("_unknown").select("_row_id").distinct().withColumn(f"_fkb_{name}", F.lit(True))
                out = out.join(bad, "_row_id", "left")
                checks.append((F.col(f"_fkb_{name}").isNotNull(), f"unknown_fk:{name}.{c.name}"))
    out = out.withColumn("_fk_reason", _first_reason(checks))
    return out.drop(*[c for c in out.columns if c.startswith(("_fk_", "_fkd_", "_fkb_")) and c != "_fk_reason"])


def _raw_text(df: DataFrame, source: Source) -> SparkColumn:
    """What quarantine keeps of the row: the raw record, with no raw PII for PII sources."""
    from pyspark.sql import functions as F

    cols = [c.name for c in source.columns] + list(source.nested)
    if not any(c.pii for c in source.columns):
        return F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*[F.col(c) for c in cols])))
    safe = [F.col(c.name) for c in source.columns if not c.pii]
    redacted_line = F.concat(
        F.lit("redacted malformed line sha256="),
        F.sha2(F.col(CORRUPT), 256),
        F.lit(" first field="),
        F.substring_index(F.col(CORRUPT), ",", 1),
    )
    return F.coalesce(F.when(F.col(CORRUPT).isNotNull(), redacted_line), F.to_json(F.struct(*safe)))


def clean_frame(
    bronze: DataFrame,
    source: Source,
    dims: dict[str, DataFrame],
    salt: str,
    persist: Callable[[DataFrame], DataFrame] | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Pure transform: bronze rows -> (silver rows, quarantined rows with a reason).

    Order of checks: malformed record; text that is not UTF-8; then the first failing single-row
    rule (required value, text length, type, allowed values and ranges, future timestamp); then
    foreign keys against ``dims``; then duplicates by key, keeping the latest version (ties: the
    smallest raw-row hash).
    ``persist`` (given by :func:`clean`) keeps the checked rows, which silver and quarantine
    both derive from, so the expensive part runs once.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    df = _prepare(bronze, source)
    rules = [
        (F.col(CORRUPT).isNotNull(), "malformed_record"),
        (_encoding_rule(df, source), "invalid_encoding"),
        *_single_row_rules(df, source),
    ]
    df = df.withColumn("_reason", _first_reason(rules))
    df = _fk_reasons(df, source, dims)
    df = df.withColumn("_reason", F.coalesce("_reason", "_fk_reason")).drop("_fk_reason")

    key_cols = [F.coalesce(_t(source.column(k)), F.lit("")) for k in source.key]
    keyed = df.withColumn("_key", F.concat_ws("|", *key_cols))
    order = [F.col("_version").desc_nulls_last(), F.col("_row_hash")]
    version = _t(source.column(source.version)) if source.version else F.lit(None)
    window = Window.partitionBy("_reason", "ds", "_key").orderBy(*order)
    ranked = keyed.withColumn("_version", version).withColumn(
        "_rank", F.when(F.col("_reason").isNull(), F.row_number().over(window))
    )
    ranked = ranked.withColumn(
        "_reason", F.when(F.col("_rank") > 1, F.lit("duplicate_key")).otherwise(F.col("_reason"))
    )
    if persist is not None:  # keep only what silver and quarantine read
        needed = [c for c in ranked.columns if not c.startswith(("__n_", "_rank", "_version", "_row_id"))]
        ranked = persist(ranked.select(*needed))

    quarantine = ranked.where(F.col("_reason").isNotNull()).select(
        F.lit(source.name).alias("table"),
        F.col("_reason").alias("reason"),
        # valid UTF-8 whatever the input (foreign bytes become U+FFFD), so every reader can open quarantine
        F.make_valid_utf8(F.when(F.col(CORRUPT).isNull(), F.col("_key"))).alias("key"),
        F.make_valid_utf8(_raw_text(ranked, source)).alias("raw"),
        "_source_file",
        "_ingested_at",
        "_row_hash",
        "ds",
    )
    valid = ranked.where(F.col("_reason").isNull())
    silver = _shape_silver(valid, source, salt)
    return silver, quarantine


def _shape_silver(valid: DataFrame, source: Source, salt: str) -> DataFrame:
    """Typed columns, imputation per the contract, PII hashed, outlier flags, lineage columns."""
    from pyspark.sql import functions as F

    cols: list[SparkColumn] = []
    missing = []
    for c in source.columns:
        typed = _t(c)
        if c.impute is not None:
            missing.append(F.when(F.col(c.name).isNull() | (F.trim(F.col(c.name).cast("string")) == ""), F.lit(c.name)))
            if c.impute != "category_median":
                typed = F.coalesce(typed, F.expr(c.impute).cast(c.type))
        if c.pii == "drop":
            continue
        if c.pii == "hash":
            value = F.regexp_replace(typed, r"[^0-9+]", "") if c.name == "phone" else typed
            cols.append(F.sha2(F.concat(F.lit(salt), value), 256).alias(f"{c.name}_hash"))
            continue
        cols.append(typed.alias(c.name))
    for name, nested in source.nested.items():
        cols.append(F.transform(F.col(name), _typed_item(nested)).alias(name))
    cols.append(
        F.array_compact(F.array(*missing)).alias("_missing")
        if missing
        else F.array().cast("array<string>").alias("_missing")
    )
    out = valid.select(*cols, "_source_file", "_ingested_at", "_row_hash", "ds")
    for c in source.columns:
        if c.impute == "category_median":  # median of the category in the same partition, else of the partition
            medians = out.groupBy("ds", "category").agg(F.median(c.name).alias("_median"))
            overall = out.groupBy("ds").agg(F.median(c.name).alias("_overall"))
            out = (
                out.join(medians, ["ds", "category"], "left")
                .join(overall, "ds", "left")
                .withColumn(c.name, F.coalesce(F.col(c.name), F.col("_median"), F.col("_overall")))
                .drop("_median", "_overall")
            )
    for c in source.columns:
        if c.outlier:  # flagged above Q3 + 3 IQR of the positive values of the same partition
            positive = F.when(F.col(c.name) > 0, F.col(c.name))
            fences = (
                out.groupBy("ds")
                .agg(F.percentile(positive, F.array(F.lit(0.25), F.lit(0.75))).alias("_q"))
                .select("ds", (F.col("_q")[1] + 3 * (F.col("_q")[1] - F.col("_q")[0])).alias("_fence"))
            )
            out = (
                out.join(F.broadcast(fences), "ds", "left")
                .withColumn(f"{c.name}_outlier", F.coalesce(F.col(c.name) > F.col("_fence"), F.lit(False)))
                .drop("_fence")
            )
    ordered = [c for c in out.columns if not c.startswith("_") and c != "ds"]
    return out.select(*ordered, "_missing", "_source_file", "_ingested_at", "_row_hash", "ds")


def load_dims(spark: SparkSession, settings: Settings, source: Source, ds: str) -> dict[str, DataFrame]:
    """Keys of every table this source references, with the first date each is in silver (up to ``ds``)."""
    from pyspark.sql import functions as F

    wanted = {c.fk for c in source.columns if c.fk} | {c.fk for cols in source.nested.values() for c in cols if c.fk}
    dims = {}
    for table in sorted(t for t in wanted if t):
        frame = read_upto(spark, layer_path(settings, "silver", table), ds)
        key = SOURCES[table].key[0]
        if frame is None:
            log.warning("%s: no silver %s yet; every %s reference will be unknown", source.name, table, table)
            dims[table] = spark.createDataFrame([], "key string, first_ds string")
            continue
        dims[table] = frame.groupBy(F.col(key).alias("key")).agg(F.min("ds").alias("first_ds"))
    return dims


def clean(
    spark: SparkSession,
    settings: Settings,
    table: str,
    ds: str,
    since: str | None = None,
    validate: Callable[[DataFrame, str, list[str]], dict] | None = None,
) -> CleanResult:
    """Bronze partitions ``since``..``ds`` -> validated silver and quarantine partitions (replaced).

    ``validate`` (the Great Expectations gate) sees the silver rows before anything is written
    and raises on a failed critical expectation, which leaves the previous partitions intact.

    Few Spark actions and small plans, because on a small shop each costs more than its data: the
    checked rows are computed once and checkpointed (:func:`jobs.pipeline.lake.checkpoint`), then
    counted by date and reason in one pass (silver rows per date, quarantine rows per date and per
    reason: no other count); silver is shaped once and checkpointed partitioned by date (one file
    per date; the gate's checks scan it); silver and quarantine are written from the checkpoints
    with the known row counts; bronze is counted from its Parquet footers.
    """
    from pyspark.sql import functions as F

    from jobs.pipeline.pii import pii_salt

    t0 = time.perf_counter()
    dates = ds_range(ds, since)
    source = SOURCES[table]
    silver_root = layer_path(settings, "silver", table)
    quarantine_root = layer_path(settings, "quarantine", table)
    bronze = read_range(spark, layer_path(settings, "bronze", table), dates)
    if bronze is None:
        log.warning(
            "%s %s..%s: no bronze partitions (no landing files): silver and quarantine emptied",
            table,
            dates[0],
            dates[-1],
        )
        empty = spark.range(0).selectExpr("CAST(NULL AS STRING) AS ds")
        write_partitions(spark, empty, silver_root, dates)
        write_partitions(spark, empty, quarantine_root, dates)
        return CleanResult(table, dates, 0, {}, {}, time.perf_counter() - t0)

    kept: list[DataFrame] = []

    def persist(frame: DataFrame) -> DataFrame:
        kept.append(checkpoint(frame))
        return kept[-1]

    phases: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = round(now - mark, 2)
        mark = now

    try:
        dims = load_dims(spark, settings, source, dates[-1])
        # the one pass over bronze (checkpointed inside): read, type, check, join keys, rank duplicates
        silver, quarantine = clean_frame(bronze, source, dims, pii_salt(settings), persist)
        lap("read, type, check, join keys, rank duplicates (checkpointed)")
        tally = kept[0].groupBy("ds", "_reason").agg(F.count("*").alias("n")).collect()
        silver_rows: dict[str, int] = {}
        quarantine_rows: dict[str, int] = {}
        reasons: dict[str, int] = {}
        for row in tally:
            if row["_reason"] is None:
                silver_rows[row["ds"]] = silver_rows.get(row["ds"], 0) + row["n"]
            else:
                quarantine_rows[row["ds"]] = quarantine_rows.get(row["ds"], 0) + row["n"]
                reasons[row["_reason"]] = reasons.get(row["_reason"], 0) + row["n"]
        lap("count by date and reason")
        # one partition per date: one file per date, and the gate's queries scan few partitions
        silver = persist(silver.repartition("ds"))
        lap("shape silver (checkpointed)")
        validation = validate(silver, table, dates) if validate else {}
        lap("great expectations gate")
        silver_rows = write_partitions(spark, silver, silver_root, dates, rows=silver_rows)
        lap("write silver")
        write_partitions(spark, quarantine.repartition("ds"), quarantine_root, dates, rows=quarantine_rows)
        lap("write quarantine")
    finally:
        for frame in kept:
            release(frame)
    bronze_rows = parquet_rows(layer_path(settings, "bronze", table), dates)  # footers: checks joins lost none
    result = CleanResult(
        table,
        dates,
        bronze_rows,
        silver_rows,
        dict(sorted(reasons.items())),
        time.perf_counter() - t0,
        validation,
        phases,
    )
    if bronze_rows != result.silver_total + result.quarantined_rows:
        raise RuntimeError(
            f"{table}: {bronze_rows} bronze rows but {result.silver_total} silver + "
            f"{result.quarantined_rows} quarantined"
        )
    log.info(
        "clean %s %s..%s: %d -> %d silver, %d quarantined %s in %.1f s %s",
        table,
        dates[0],
        dates[-1],
        bronze_rows,
        result.silver_total,
        result.quarantined_rows,
        result.quarantined,
        result.seconds,
        phases,
    )
    return result
