"""The bad-input corpus (tests/data/bad/cases.yaml): load the manifest, write each case's files, run it.

The repository keeps small UTF-8 sources; whatever is big or awkward to commit (10 MB fields,
Latin-1 and UTF-16 bytes, gzip streams, Parquet files, zero-byte files) is produced here.
"""

from __future__ import annotations

import gzip
import io
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from jobs.contracts import ORDER, SOURCES
from jobs.settings import Settings
from tests.conftest import ROOT

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

CORPUS = ROOT / "tests" / "data" / "bad"
IMPORT_TABLE = "campaign_log_import"
TEN_MB = "@@10MB@@"
TEN_MB_CHARS = 10_000_000
DIMENSIONS = ("customers", "products")  # the tables facts refer to: cleaned first
BASE_DS = date(2026, 9, 1)  # the base dimensions; every accepted/quarantined case gets a later date


@dataclass(frozen=True)
class Case:
    """One entry of the manifest, with the partition date it runs on."""

    id: str
    table: str
    kind: str
    defect: str
    files: list[dict[str, Any]]
    expect: dict[str, Any]
    ds: str = ""

    @property
    def outcome(self) -> str:
        return str(self.expect["outcome"])

    @property
    def names(self) -> list[str]:
        return [str(f["name"]) for f in self.files]


@dataclass(frozen=True)
class Corpus:
    """The manifest: base dimension files by table, and the cases."""

    base: dict[str, str]
    cases: list[Case] = field(default_factory=list)

    def by_table(self, table: str, *, errors: bool) -> list[Case]:
        return [c for c in self.cases if c.table == table and (c.outcome == "error") == errors]


def load(path: Path = CORPUS / "cases.yaml") -> Corpus:
    """The manifest with a partition date per case (grouped cases first, then error cases)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw = [Case(**{k: v for k, v in c.items()}) for c in data["cases"]]
    grouped = [c for c in raw if c.outcome != "error" and c.table != IMPORT_TABLE]
    errors = [c for c in raw if c.outcome == "error" and c.table != IMPORT_TABLE]
    dates: dict[str, str] = {}
    for i, case in enumerate(grouped, start=1):
        dates[case.id] = (BASE_DS + timedelta(days=i)).isoformat()
    for i, case in enumerate(errors, start=len(grouped) + 2):  # after the grouped range, which they must not join
        dates[case.id] = (BASE_DS + timedelta(days=i)).isoformat()
    cases = [Case(**{**c.__dict__, "ds": dates.get(c.id, "")}) for c in raw]
    return Corpus(base=data["base"], cases=cases)


def file_bytes(spec: dict[str, Any]) -> bytes:
    """The bytes of one case file, made from its spec (see the header of cases.yaml)."""
    if spec.get("empty"):
        return b""
    if "rows" in spec:
        return _parquet(spec)
    text = spec["text"] if "text" in spec else (CORPUS / spec["from"]).read_text(encoding="utf-8")
    if append := spec.get("append"):
        text += "".join(append["template"].format(i=i) + "\n" for i in range(1, append["count"] + 1))
    text = text.replace(TEN_MB, "x" * TEN_MB_CHARS)
    if spec.get("newline") == "crlf":
        text = text.replace("\n", "\r\n")
    data = text.encode(spec.get("encoding", "utf-8"))  # "utf-16" writes its byte-order mark
    if spec.get("bom"):
        data = b"\xef\xbb\xbf" + data
    if mode := spec.get("gzip"):
        data = gzip.compress(data, mtime=0)
        if mode == "truncated":
            data = data[: len(data) // 2]
    return data


def _parquet(spec: dict[str, Any]) -> bytes:
    """A Parquet file with the simulator's campaign_log schema, types overridden or columns dropped."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.simulator.tables import CAMPAIGN_LOG_SCHEMA

    overrides = spec.get("types", {})
    fields = [
        pa.field(f.name, pa.type_for_alias(overrides[f.name]) if f.name in overrides else f.type)
        for f in CAMPAIGN_LOG_SCHEMA
        if f.name not in spec.get("drop", [])
    ]
    schema = pa.schema(fields)
    columns: dict[str, list[Any]] = {f.name: [] for f in fields}
    for row in spec["rows"]:
        for f in fields:
            value = row.get(f.name)
            if isinstance(value, str) and pa.types.is_timestamp(f.type):
                value = datetime.fromisoformat(value)
            columns[f.name].append(value)
    table = pa.table({name: pa.array(values, schema.field(name).type) for name, values in columns.items()})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def write_case(case: Case, folder: Path) -> list[Path]:
    """Write the case's files into ``folder`` (created); return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in case.files:
        path = folder / spec["name"]
        path.write_bytes(file_bytes(spec))
        paths.append(path)
    return paths


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the pipeline did with one case."""

    error: str | None = None
    silver: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    imported_rows: int | None = None


@dataclass(frozen=True)
class CorpusRun:
    """The lake the corpus ran into, the outcome of every case by id, and the last grouped date."""

    settings: Settings
    outcomes: dict[str, Outcome]
    last_ds: str


def rows(root: Path) -> list[dict[str, Any]]:
    """Every row of a partitioned Parquet table (``ds`` as text), or none if it has no partition."""
    import pyarrow.dataset as pads

    if not root.is_dir() or not any(root.glob("ds=*/*.parquet")):
        return []
    out = pads.dataset(root, format="parquet", partitioning="hive").to_table().to_pylist()
    for row in out:
        row["ds"] = str(row["ds"])
    return out


def key(table: str, row: dict[str, Any]) -> str:
    """The contract key of a silver row, composite keys joined by ``|`` (as quarantine's ``key``)."""
    return "|".join(str(row[k]) for k in SOURCES[table].key)


def run(spark: SparkSession, settings: Settings, corpus: Corpus | None = None) -> CorpusRun:
    """Write every case into the landing zone of ``settings`` and run it through ingest + clean / the import.

    Per table, the accepted and quarantined cases run as one ingest and one clean over their dates
    (one date per case); every error case runs alone on its own date. Tables run side by side in
    threads of the one Spark session, in the DAG's order: ingest, dimensions' clean, facts' clean.
    """
    from jobs.imports.campaign_log import CampaignImportError, import_campaign_log
    from jobs.pipeline.clean import clean
    from jobs.pipeline.ingest import ingest
    from jobs.pipeline.lake import PipelineError

    corpus = corpus or load()
    for table, source in corpus.base.items():
        folder = settings.landing / table / f"ds={BASE_DS}"
        folder.mkdir(parents=True)
        shutil.copy(CORPUS / source, folder / Path(source).name)
    for case in corpus.cases:
        if case.table != IMPORT_TABLE:
            write_case(case, settings.landing / case.table / f"ds={case.ds}")

    out: dict[str, Outcome] = {}
    last = max(c.ds for c in corpus.cases if c.table != IMPORT_TABLE and c.outcome != "error")
    since = BASE_DS.isoformat()
    warnings: dict[str, list[str]] = {}

    def ingest_table(table: str) -> None:
        warnings[table] = ingest(spark, settings, table, last, since=since).warnings
        for case in corpus.by_table(table, errors=True):
            try:
                ingest(spark, settings, table, case.ds)
                out[case.id] = Outcome()
            except PipelineError as exc:
                out[case.id] = Outcome(error=str(exc))

    def clean_table(table: str) -> None:
        clean(spark, settings, table, last, since=since)
        silver = rows(settings.lake / "silver" / table)
        quarantine = rows(settings.lake / "quarantine" / table)
        for case in corpus.by_table(table, errors=False):
            out[case.id] = Outcome(
                silver=[r for r in silver if r["ds"] == case.ds],
                quarantine=[r for r in quarantine if r["ds"] == case.ds],
                warnings=warnings[table],
            )

    # The steps of different tables run side by side, as the DAG's tasks do: every ingest at once,
    # then the dimensions' cleaning, then the facts' (which check their keys against the dimensions).
    stages = [
        (ingest_table, ORDER),
        (clean_table, DIMENSIONS),
        (clean_table, [t for t in ORDER if t not in DIMENSIONS]),
    ]
    with ThreadPoolExecutor(max_workers=len(ORDER), thread_name_prefix="bad-corpus") as pool:
        for step, tables in stages:
            started = time.perf_counter()
            for future in [pool.submit(step, table) for table in tables]:
                future.result()
            log.info("bad corpus: %s %s in %.1f s", step.__name__, ", ".join(tables), time.perf_counter() - started)

    mapping = CORPUS / "imports" / "mapping.yaml"
    for case in (c for c in corpus.cases if c.table == IMPORT_TABLE):
        [path] = write_case(case, settings.home / "exports" / case.id)
        try:
            imported = import_campaign_log(path, mapping, settings.home / "imported" / case.id)
            out[case.id] = Outcome(imported_rows=imported.rows)
        except CampaignImportError as exc:
            out[case.id] = Outcome(error=str(exc))
    return CorpusRun(settings, out, last)
