"""Import any A/B-test or campaign export into the ``campaign_log`` landing format.

A YAML mapping (:class:`CampaignMapping`) says which source column holds what: the customer id
(or how to number the rows), the arm and the strategy each arm stands for, the propensity (a
column or a constant), an optional holdout flag, the outcomes and the columns kept as customer
attributes. :func:`import_campaign_log` checks every row against the mapping and writes

- ``<output_root>/campaign_log/ds=<campaign_date>/<dataset>.parquet`` with exactly
  :data:`~jobs.simulator.tables.CAMPAIGN_LOG_SCHEMA`,
- ``<output_root>/customer_attributes/ds=<campaign_date>/<dataset>.parquet`` with ``customer_id``
  and the feature columns under their original names and types (plus ``msp_split``, "train" or
  "test", when the mapping names a split column), and
- ``<output_root>/dataset.json``: the mapping itself (feature types, economics, split), which
  ``msp train --dataset`` and ``msp score --dataset`` read (:mod:`jobs.datasets`),

each through a temporary file and an atomic rename, so a rerun replaces the files it wrote.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from jobs.settings import IDENTIFIER, require_identifier
from jobs.simulator.tables import CAMPAIGN_LOG_SCHEMA

log = logging.getLogger(__name__)

MAX_REPORTED_ROWS = 5
#: the file beside the imported tables that records the mapping they were imported with
MANIFEST = "dataset.json"
#: the column of customer_attributes holding "train" or "test" when the mapping names a split column
SPLIT_COLUMN = "msp_split"
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_STRATEGY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAX_KNOWN_SHOWN = 10

_NUMERIC_TYPES = (pa.types.is_boolean, pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal)

ColumnName = Annotated[str, StringConstraints(min_length=1)]
_M = TypeVar("_M", bound=BaseModel)


class CampaignImportError(ValueError):
    """A mapping or a data file that cannot be imported; the message names the file and the cause."""


# --- the mapping ----------------------------------------------------------------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class GeneratedIds(_Spec):
    """Customer ids numbered from the 1-based row: ``prefix`` + the row number zero-padded to ``width``."""

    prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]*$")] = ""
    width: int = Field(7, ge=1, le=18)

    def ids(self, rows: int) -> pa.Array:
        if rows >= 10**self.width:
            raise ValueError(f"width {self.width} cannot number {rows:,} rows")
        return pa.array([f"{self.prefix}{i:0{self.width}d}" for i in range(1, rows + 1)], pa.string())


class CustomerIdSpec(_Spec):
    """``column: NAME`` or ``generate: {prefix, width}``."""

    column: ColumnName | None = None
    generate: GeneratedIds | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CustomerIdSpec:
        if (self.column is None) == (self.generate is None):
            raise ValueError("give either column or generate")
        return self


class StrategySpec(_Spec):
    """The arm column and the strategy each raw value stands for."""

    column: ColumnName
    values: dict[str, str] = Field(min_length=1)

    @field_validator("values", mode="before")
    @classmethod
    def _raw_values_are_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for raw in value:
                if raw is None or isinstance(raw, bool):
                    raise ValueError(f"YAML read the raw value {raw!r} as {type(raw).__name__}: quote it")
        return value

    @field_validator("values")
    @classmethod
    def _names_are_identifiers(cls, value: dict[str, str]) -> dict[str, str]:
        for raw, name in value.items():
            if not _STRATEGY_NAME.match(name):
                raise ValueError(f"strategy name {name!r} (for {raw!r}) must be lower_snake_case, e.g. no_action")
        return value

    @property
    def names(self) -> list[str]:
        """The strategy names, in first-mentioned order, without repeats."""
        return list(dict.fromkeys(self.values.values()))


class PropensitySpec(_Spec):
    """``column: NAME`` (probability per row), ``constant: FLOAT`` in (0, 1] (every arm equally likely),
    or ``by_strategy: {strategy: FLOAT}`` (an unbalanced design, e.g. 85 % treated, 15 % control)."""

    column: ColumnName | None = None
    constant: float | None = None
    by_strategy: dict[str, float] | None = None

    @field_validator("constant", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("give the constant as a number in (0, 1]")
        return value

    @field_validator("constant")
    @classmethod
    def _in_unit_interval(cls, value: float | None) -> float | None:
        if value is not None and not (0.0 < value <= 1.0):
            raise ValueError(f"constant {value} is outside (0, 1]")
        return value

    @field_validator("by_strategy")
    @classmethod
    def _each_in_unit_interval(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for name, p in (value or {}).items():
            if not (0.0 < p <= 1.0):
                raise ValueError(f"{name}: {p} is outside (0, 1]")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> PropensitySpec:
        if sum(x is not None for x in (self.column, self.constant, self.by_strategy)) != 1:
            raise ValueError("give exactly one of column, constant or by_strategy")
        return self


class HoldoutSpec(_Spec):
    """``column: NAME`` (0/1 per row) or ``holdout_strategy: NAME`` (rows mapped to it are holdout)."""

    column: ColumnName | None = None
    holdout_strategy: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> HoldoutSpec:
        if (self.column is None) == (self.holdout_strategy is None):
            raise ValueError("give either column or holdout_strategy")
        return self


class OutcomesSpec(_Spec):
    """Source columns of the outcomes, each optional (unknown outcomes stay null)."""

    visited: ColumnName | None = None
    converted: ColumnName | None = None
    revenue: ColumnName | None = None


FEATURE_TYPES = ("numeric", "categorical", "boolean")


class EconomicsSpec(_Spec):
    """What a decision is worth: the data set's catalogue for ``msp score --dataset``.

    ``value_per_conversion``: what one conversion earns (when absent, the revenue outcome is the value);
    ``cost_per_contact``: a number for every arm but the control, or per strategy; the spending rule:
    ``budget_per_customer`` (total spend = it x the customers scored) or ``min_roi`` (treat while the
    expected incremental profit per unit of cost is at least it; the default, 0, treats every customer
    whose best strategy is expected to earn more than it costs).
    """

    value_per_conversion: float | None = Field(None, ge=0)
    cost_per_contact: float | dict[str, float] = 0.0
    budget_per_customer: float | None = Field(None, gt=0)
    min_roi: float | None = Field(None, ge=0)

    @field_validator("cost_per_contact")
    @classmethod
    def _non_negative(cls, value: float | dict[str, float]) -> float | dict[str, float]:
        for cost in value.values() if isinstance(value, dict) else [value]:
            if not cost >= 0:
                raise ValueError(f"cost {cost} is negative")
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> EconomicsSpec:
        if self.budget_per_customer is not None and self.min_roi is not None:
            raise ValueError("give budget_per_customer or min_roi, not both")
        return self

    def cost_of(self, strategy: str, control: str) -> float:
        if strategy == control:
            return 0.0
        if isinstance(self.cost_per_contact, dict):
            return float(self.cost_per_contact.get(strategy, 0.0))
        return float(self.cost_per_contact)


class SourceSpec(_Spec):
    """A data set shipped inside an installed package, read without any download.

    ``package_dataset`` names a module that follows the statsmodels ``Dataset`` convention
    (``load_pandas().data``), as ``statsmodels.datasets.*`` and ``causaldata.*`` do.
    """

    package_dataset: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")]


BAD_ROWS = ("fail", "quarantine")


def _bad_rows_rule(value: str) -> str:
    if value not in BAD_ROWS:
        raise ValueError(f"{value!r} is not one of {', '.join(BAD_ROWS)}")
    return value


#: a data set's name: an identifier (it names folders, registered models and warehouse rows)
DatasetName = Annotated[str, AfterValidator(lambda value: require_identifier(value, ""))]
#: what to do with rows that break a mapping: ``fail`` (one error naming them) or ``quarantine``
BadRowsRule = Annotated[str, AfterValidator(_bad_rows_rule)]


class SplitSpec(_Spec):
    """A train/test split column: rows whose value is in ``test_values`` are held out, the rest fit."""

    column: ColumnName
    test_values: list[str] = Field(min_length=1)


class CampaignMapping(_Spec):
    """How one campaign export maps into ``campaign_log`` (see ``mappings/hillstrom.yaml``)."""

    dataset: DatasetName
    campaign_id: str
    campaign_date: date
    customer_id: CustomerIdSpec
    strategy: StrategySpec
    propensity: PropensitySpec
    is_holdout: HoldoutSpec | None = None
    outcomes: OutcomesSpec = Field(default_factory=OutcomesSpec)
    features: list[ColumnName] = Field(default_factory=list)
    #: feature -> numeric, categorical or boolean (unlisted: numeric when the column is numeric, else categorical)
    feature_types: dict[str, str] = Field(default_factory=dict)
    economics: EconomicsSpec = Field(default_factory=EconomicsSpec)
    split: SplitSpec | None = None
    #: where the export comes from when no file is given (a package's shipped data set)
    source: SourceSpec | None = None
    #: rows that break the mapping: ``fail`` (one error naming them) or ``quarantine`` (set aside with a reason)
    on_bad_rows: BadRowsRule = "fail"
    _source: Path | None = PrivateAttr(None)

    @field_validator("campaign_id")
    @classmethod
    def _campaign_id_is_trimmed(cls, value: str) -> str:
        if not value or value != value.strip():
            raise ValueError(f"{value!r} must be non-empty, without leading or trailing spaces")
        return value

    @field_validator("campaign_date", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        if isinstance(value, datetime):
            raise ValueError("give a date without a time, as YYYY-MM-DD")
        if isinstance(value, date):
            return value
        if isinstance(value, str) and _ISO_DATE.match(value.strip()):
            try:
                return date.fromisoformat(value.strip())
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a valid date ({exc})") from None
        raise ValueError(f"give the date as YYYY-MM-DD, not {value!r}")

    @field_validator("outcomes", "features", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return {} if info.field_name == "outcomes" else []
        return value

    @field_validator("features")
    @classmethod
    def _distinct_features(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for name in value:
            if name == "customer_id":
                raise ValueError("'customer_id' is always written as the id column: drop it from features")
            if name in seen:
                raise ValueError(f"{name!r} is listed twice")
            seen.add(name)
        return value

    @model_validator(mode="after")
    def _typed_features_are_listed(self) -> CampaignMapping:
        for name, kind in self.feature_types.items():
            if name not in self.features:
                raise ValueError(f"feature_types.{name}: {name!r} is not in features")
            if kind not in FEATURE_TYPES:
                raise ValueError(f"feature_types.{name}: {kind!r} is not one of {', '.join(FEATURE_TYPES)}")
        if isinstance(self.economics.cost_per_contact, dict):
            for name in self.economics.cost_per_contact:
                if name not in self.strategy.names:
                    known = ", ".join(self.strategy.names)
                    raise ValueError(f"economics.cost_per_contact.{name}: not one of the strategies ({known})")
        return self

    @model_validator(mode="after")
    def _propensity_of_every_arm(self) -> CampaignMapping:
        by_strategy = self.propensity.by_strategy
        if by_strategy is not None:
            known = ", ".join(self.strategy.names)
            for name in by_strategy:
                if name not in self.strategy.names:
                    raise ValueError(f"propensity.by_strategy.{name}: not one of the strategies ({known})")
            if missing := [name for name in self.strategy.names if name not in by_strategy]:
                raise ValueError(f"propensity.by_strategy: no propensity for {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _holdout_strategy_is_mapped(self) -> CampaignMapping:
        if self.is_holdout is not None and self.is_holdout.holdout_strategy is not None:
            name = self.is_holdout.holdout_strategy
            if name not in self.strategy.names:
                raise ValueError(
                    f"is_holdout.holdout_strategy: {name!r} is not one of the strategies in "
                    f"strategy.values ({', '.join(self.strategy.names)})"
                )
        return self

    @property
    def ds(self) -> str:
        return self.campaign_date.isoformat()

    @property
    def source_label(self) -> str:
        """The YAML file the mapping was loaded from (for messages)."""
        return str(self._source) if self._source is not None else "the mapping"

    def required_columns(self) -> dict[str, str]:
        """Source column -> the mapping key(s) that need it."""
        keys: list[tuple[str, str | None]] = [
            ("customer_id.column", self.customer_id.column),
            ("strategy.column", self.strategy.column),
            ("propensity.column", self.propensity.column),
            ("is_holdout.column", self.is_holdout.column if self.is_holdout else None),
            ("outcomes.visited", self.outcomes.visited),
            ("outcomes.converted", self.outcomes.converted),
            ("outcomes.revenue", self.outcomes.revenue),
        ]
        keys += [("features", name) for name in self.features]
        keys.append(("split.column", self.split.column if self.split else None))
        out: dict[str, list[str]] = {}
        for key, column in keys:
            if column is not None and key not in out.setdefault(column, []):
                out[column].append(key)
        return {column: ", ".join(found) for column, found in out.items()}


def load_mapping(path: str | Path) -> CampaignMapping:
    """Read and validate a mapping YAML; errors name the file and the key."""
    return load_yaml_model(path, CampaignMapping)


def load_yaml_model(path: str | Path, model: type[_M]) -> _M:
    """Read and validate a YAML file as ``model`` (a mapping); errors name the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CampaignImportError(f"{path}: no such mapping file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignImportError(f"{path}: cannot read the mapping: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an impossible unquoted date (2008-02-30)
        raise CampaignImportError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CampaignImportError(f"{path}: expected a mapping of keys (dataset, campaign_id, ...)")
    try:
        mapping = model.model_validate(data)
    except ValidationError as exc:
        raise CampaignImportError("\n".join(_describe(path, e) for e in exc.errors())) from None
    mapping._source = path  # type: ignore[attr-defined]
    return mapping


def _describe(path: Path, error: Any) -> str:
    key = ".".join(str(part) for part in error["loc"] if part != "[key]")
    if error["type"] == "missing":
        message = "missing"
    elif error["type"] == "extra_forbidden":
        message = "unknown key"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
    return f"{path}: {key}: {message}" if key else f"{path}: {message}"


def shipped_mapping(name: str) -> Path:
    """The path of a mapping shipped with the package (``jobs/imports/mappings/<name>.yaml``)."""
    shipped = shipped_mapping_names()
    if name not in shipped:
        raise CampaignImportError(
            f"{name!r} is neither a mapping file nor a shipped mapping (shipped: {', '.join(shipped)})"
        )
    return Path(str(resources.files(__package__).joinpath("mappings", f"{name}.yaml")))


def shipped_mapping_names() -> list[str]:
    """Names of the mappings shipped with the package."""
    folder = resources.files(__package__).joinpath("mappings")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_mapping(value: str | Path) -> Path:
    """A mapping file path, or the shipped mapping of that name (e.g. ``hillstrom``)."""
    path = Path(value)
    if path.is_file():
        return path
    if IDENTIFIER.match(str(value)):
        return shipped_mapping(str(value))
    raise CampaignImportError(f"{value}: no such mapping file")


def default_output_root(dataset: str) -> Path:
    """``<lake>/datasets/<dataset>/landing``: an external data set never mixes with the shop's landing."""
    from jobs.settings import get_settings

    return get_settings().lake / "datasets" / dataset / "landing"


# --- reading --------------------------------------------------------------------------------


def _format_of(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CampaignImportError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r} (use {', '.join(FORMATS)})"
        )
    return fmt


def _csv_header(path: Path) -> list[str]:
    """The first non-empty record (pyarrow skips empty lines before the header too)."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return next((record for record in csv.reader(fh) if record), [])


def read_columns(path: Path, fmt: str, needed: dict[str, str], text_columns: list[str]) -> pa.Table:
    """The ``needed`` columns of ``path`` (column -> the mapping keys that need it; ``text_columns`` read as
    text, e.g. ids with leading zeros); a missing column is an error naming the keys."""
    if fmt != "parquet":
        _check_text(path)
    try:
        if fmt == "csv":
            names = _csv_header(path)
        elif fmt == "parquet":
            names = pq.read_schema(path).names
        else:
            table = pajson.read_json(path)
            names = table.column_names
        _check_columns(path, names, needed)
        if fmt == "csv":
            table = pacsv.read_csv(
                path,
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    include_columns=list(needed), column_types=dict.fromkeys(text_columns, pa.string())
                ),
            )
        elif fmt == "parquet":
            table = pq.read_table(path, columns=list(needed))
        else:
            table = table.select(list(needed))
    except FileNotFoundError:
        raise CampaignImportError(f"{path}: no such file") from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CampaignImportError(f"{path}: cannot read it as {fmt}: {exc}") from None
    return table


def _check_text(path: Path) -> None:
    """A text export must be UTF-8 and not empty: say so by name, encoding and line, not by byte offset."""
    from jobs.pipeline.textfiles import first_invalid_utf8, foreign_encoding, read_head

    try:
        head = read_head(path)
    except FileNotFoundError:
        raise CampaignImportError(f"{path}: no such file") from None
    except OSError as exc:
        raise CampaignImportError(f"{path}: cannot read it: {exc}") from None
    if not head:
        raise CampaignImportError(f"{path}: empty file (0 bytes): no header and no data rows")
    if encoding := foreign_encoding(head):
        raise CampaignImportError(f"{path}: wrong encoding: the file is {encoding}; export it as UTF-8")
    if bad := first_invalid_utf8(path):
        line, byte = bad
        raise CampaignImportError(
            f"{path}: wrong encoding: line {line} has the byte 0x{byte:02x}, which is not UTF-8 "
            "(a Latin-1 or Windows-1252 export?); export it as UTF-8"
        )


def _check_columns(path: Path, names: list[str], needed: dict[str, str]) -> None:
    missing = [c for c in needed if c not in names]
    if missing:
        wanted = "; ".join(f"{c!r} ({needed[c]})" for c in missing)
        hint = ""
        if len(names) == 1 and any(d in names[0] for d in (";", "\t", "|")):
            hint = " (one column: is the file separated by something other than ','?)"
        raise CampaignImportError(
            f"{path}: missing column(s) {wanted}; the file has: {', '.join(names) or 'no columns'}{hint}"
        )
    repeated = [c for c in needed if names.count(c) > 1]
    if repeated:
        raise CampaignImportError(f"{path}: column(s) {', '.join(map(repr, repeated))} appear more than once")


def _physical_lines(path: Path, fmt: str, rows: list[int]) -> dict[int, int]:
    """0-based data row -> 1-based physical line (CSV: the header is line 1; Parquet: the row)."""
    wanted = set(rows)
    out: dict[int, int] = {}
    if fmt == "parquet":
        return {r: r + 1 for r in rows}
    row = 0
    with open(path, encoding="utf-8-sig", newline="" if fmt == "csv" else None) as fh:
        if fmt == "csv":
            reader = csv.reader(fh)
            next((record for record in reader if record), None)  # the header
            start = reader.line_num + 1
            for record in reader:
                if record:  # the CSV reader skips empty lines, as pyarrow does
                    if row in wanted:
                        out[row] = start
                    row += 1
                    if len(out) == len(wanted):
                        break
                start = reader.line_num + 1
        else:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    if row in wanted:
                        out[row] = number
                    row += 1
                    if len(out) == len(wanted):
                        break
    return out


# --- checking and converting columns --------------------------------------------------------


#: 0-based data row -> where it is in the file, e.g. ``line 7`` (CSV, JSON lines) or ``row 6`` (Parquet)
Locate = Callable[[int], str]


@dataclass(frozen=True)
class _Rule:
    """Rows that break one rule, and how to describe the break in row ``i``."""

    broken: np.ndarray
    describe: Callable[[int, Locate], str]


def _numbers(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, missing, unparsable)`` of a column as float64 (NaN where missing or unparsable)."""
    kind = column.type
    n = len(column)
    if pa.types.is_null(kind):
        return np.full(n, np.nan), np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    if any(is_type(kind) for is_type in _NUMERIC_TYPES):
        values = np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype="float64")
        return values, np.isnan(values), np.zeros(n, dtype=bool)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = pd.Series(column.to_pandas(), dtype=object).str.strip()
        lowered = text.str.lower()
        text = text.mask(lowered == "true", "1").mask(lowered == "false", "0")
        missing = (text.isna() | (text == "")).to_numpy()
        values = pd.to_numeric(text.mask(missing), errors="coerce").to_numpy(dtype="float64")
        return values, missing, np.isnan(values) & ~missing
    missing = column.is_null().to_numpy(zero_copy_only=False)
    return np.full(n, np.nan), missing, ~missing


def _raw(column: pa.ChunkedArray, i: int) -> str:
    return repr(column[i].as_py())


def _binary(column: pa.ChunkedArray, key: str, name: str, allow_missing: bool) -> tuple[pa.Array, _Rule]:
    values, missing, unparsable = _numbers(column)
    broken = unparsable | (~missing & ~np.isin(values, (0.0, 1.0)))
    if not allow_missing:
        broken |= missing

    def describe(i: int, locate: Locate) -> str:
        if missing[i]:
            return f"{key} ({name}): missing, must be 0 or 1"
        return f"{key} ({name}): {_raw(column, i)} is not 0 or 1"

    return pa.array(values == 1.0, type=pa.bool_(), mask=missing), _Rule(broken, describe)


def _propensity(column: pa.ChunkedArray, name: str) -> tuple[pa.Array, _Rule]:
    values, missing, unparsable = _numbers(column)
    with np.errstate(invalid="ignore"):
        inside = (values > 0.0) & (values <= 1.0)
    broken = missing | unparsable | ~inside

    def describe(i: int, locate: Locate) -> str:
        if missing[i]:
            return f"propensity ({name}): missing"
        if unparsable[i]:
            return f"propensity ({name}): {_raw(column, i)} is not a number"
        return f"propensity ({name}): {_raw(column, i)} is outside (0, 1]"

    return pa.array(values, type=pa.float64()), _Rule(broken, describe)


def _revenue(column: pa.ChunkedArray, name: str) -> tuple[pa.Array, _Rule]:
    values, missing, unparsable = _numbers(column)
    with np.errstate(invalid="ignore"):
        broken = unparsable | (~missing & ~(np.isfinite(values) & (values >= 0.0)))

    def describe(i: int, locate: Locate) -> str:
        return f"outcomes.revenue ({name}): {_raw(column, i)} is not a non-negative number"

    return pa.array(values, type=pa.float64(), mask=missing), _Rule(broken, describe)


def _as_text(column: pa.ChunkedArray, path: Path, name: str) -> pa.ChunkedArray:
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise CampaignImportError(f"{path}: column {name!r} has type {column.type}, not text") from None


def _strategies(column: pa.ChunkedArray, spec: StrategySpec, path: Path, source: str) -> tuple[np.ndarray, _Rule]:
    raw = _as_text(column, path, spec.column)
    keys = list(spec.values)
    index = pc.index_in(raw, value_set=pa.array(keys, pa.string()))
    unknown = index.is_null().to_numpy(zero_copy_only=False)
    position = np.asarray(index.fill_null(0).to_numpy(zero_copy_only=False), dtype="int64")
    names = np.array([spec.values[k] for k in keys], dtype=object)[position]
    known = ", ".join(map(repr, keys[:_MAX_KNOWN_SHOWN])) + (", ..." if len(keys) > _MAX_KNOWN_SHOWN else "")

    def describe(i: int, locate: Locate) -> str:
        value = raw[i].as_py()
        if value is None:
            return f"strategy ({spec.column}): missing"
        return f"strategy ({spec.column}): {value!r} is not in strategy.values of {source} (known: {known})"

    return names, _Rule(unknown, describe)


def _customer_ids(column: pa.ChunkedArray, path: Path, name: str) -> tuple[pa.ChunkedArray, _Rule]:
    ids = _as_text(column, path, name)
    text = pd.Series(ids.to_pandas(), dtype=object)
    empty = (text.isna() | (text.str.strip() == "")).to_numpy()
    repeated = text.duplicated(keep="first").to_numpy() & ~empty
    broken = empty | repeated

    def describe(i: int, locate: Locate) -> str:
        if empty[i]:
            return f"customer_id ({name}): missing"
        first = int(np.flatnonzero((text == text.iloc[i]).to_numpy())[0])
        return f"customer_id ({name}): {text.iloc[i]!r} repeats {locate(first)}"

    return ids, _Rule(broken, describe)


def _quarantine_rows(path: Path, fmt: str, rules: list[_Rule], table: pa.Table) -> pa.Table | None:
    """The rows that break a rule, as text, with their line (or row) and every rule they break; None if none."""
    broken = np.logical_or.reduce([r.broken for r in rules]) if rules else np.zeros(table.num_rows, dtype=bool)
    if not broken.any():
        return None
    lines = _physical_lines(path, fmt, list(range(table.num_rows)))
    where = "row" if fmt == "parquet" else "line"

    def locate(i: int) -> str:
        return f"{where} {lines.get(i, i + 1)}"

    shown = np.flatnonzero(broken)
    reasons = ["; ".join(r.describe(int(i), locate) for r in rules if r.broken[i]) for i in shown]
    picked = table.take(pa.array(shown))
    return pa.table(
        {
            "source_line": pa.array([lines.get(int(i), int(i) + 1) for i in shown], pa.int64()),
            "reason": pa.array(reasons, pa.string()),
            **{name: pc.cast(picked[name], pa.string()) for name in picked.column_names},
        }
    )


def _raise_broken_rows(path: Path, fmt: str, rules: list[_Rule]) -> None:
    """Raise one error naming the first few rows that break a rule, and how many do."""
    if not rules:
        return
    broken = np.logical_or.reduce([r.broken for r in rules])
    count = int(broken.sum())
    if not count:
        return
    shown = [int(i) for i in np.flatnonzero(broken)[:MAX_REPORTED_ROWS]]
    lines = _physical_lines(path, fmt, shown)
    where = "row" if fmt == "parquet" else "line"

    def locate(i: int) -> str:
        if i not in lines:
            lines.update(_physical_lines(path, fmt, [i]))
        return f"{where} {lines.get(i, i + 1)}"

    details = [f"  {locate(i)}: " + "; ".join(r.describe(i, locate) for r in rules if r.broken[i]) for i in shown]
    head = f"{path}: {count:,} row{'s' if count != 1 else ''} break{'s' if count == 1 else ''} the mapping"
    head += f" (the first {len(shown)} shown)" if count > len(shown) else ""
    raise CampaignImportError("\n".join([head + ":", *details]))


# --- the import -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    """What one import wrote."""

    dataset: str
    campaign_id: str
    ds: str
    rows: int
    per_strategy: dict[str, int]  # strategy -> rows, in the mapping's order
    holdouts: int
    campaign_log: Path
    customer_attributes: Path
    quarantined: int = 0
    quarantine: Path | None = None  # the rows set aside (mapping ``on_bad_rows: quarantine``), with reasons


def import_campaign_log(
    file: str | Path | None,
    mapping: CampaignMapping | str | Path,
    output_root: str | Path,
    on_bad_rows: str | None = None,
) -> ImportResult:
    """Map ``file`` into ``campaign_log`` and ``customer_attributes`` under ``output_root``.

    Without ``file``, the mapping's ``source`` (a data set shipped inside a package) is read.
    ``on_bad_rows`` overrides the mapping's rule for rows that break it (``fail`` or ``quarantine``).
    """
    spec = mapping if isinstance(mapping, CampaignMapping) else load_mapping(mapping)
    if on_bad_rows is not None and on_bad_rows not in BAD_ROWS:
        raise CampaignImportError(f"on_bad_rows {on_bad_rows!r} is not one of {', '.join(BAD_ROWS)}")
    rule = on_bad_rows or spec.on_bad_rows
    if file is None:
        if spec.source is None:
            raise CampaignImportError(f"{spec.source_label}: give a file to import (the mapping names no source)")
        import tempfile

        with tempfile.TemporaryDirectory(prefix="msp-import-") as tmp:
            return _import(package_source(spec, Path(tmp)), spec, Path(output_root), rule, spec.source.package_dataset)
    return _import(Path(file), spec, Path(output_root), rule, None)


def package_source(spec: CampaignMapping, folder: Path) -> Path:
    """The mapping's package data set written to ``folder`` as Parquet (rows in the package's order)."""
    import importlib

    assert spec.source is not None
    name = spec.source.package_dataset
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise CampaignImportError(
            f"{spec.source_label}: source.package_dataset: cannot import {name!r} ({exc}); "
            f"install the package {name.split('.')[0]!r} or give the export as a file"
        ) from None
    loader = getattr(module, "load_pandas", None)
    if loader is None:
        raise CampaignImportError(f"{spec.source_label}: source.package_dataset: {name!r} has no load_pandas()")
    frame = loader().data
    path = folder / f"{name}.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    log.info("read %d rows of the package data set %s", len(frame), name)
    return path


def _import(path: Path, spec: CampaignMapping, root: Path, on_bad_rows: str, label: str | None) -> ImportResult:
    fmt = _format_of(path)
    log.info("importing %s (%s) with mapping %s", path, fmt, spec.source_label)
    text_columns = [c for c in (spec.customer_id.column, spec.strategy.column) if c is not None]
    table = read_columns(path, fmt, spec.required_columns(), text_columns)
    n = table.num_rows
    if n == 0:
        raise CampaignImportError(f"{path}: no data rows")

    rules: list[_Rule] = []
    generate = spec.customer_id.generate
    if generate is not None:
        try:
            ids = pa.chunked_array([generate.ids(n)])
        except ValueError as exc:
            raise CampaignImportError(f"{spec.source_label}: customer_id.generate: {exc} of {path}") from None
    else:
        column = str(spec.customer_id.column)
        ids, rule = _customer_ids(table[column], path, column)
        rules.append(rule)

    strategy, rule = _strategies(table[spec.strategy.column], spec.strategy, path, spec.source_label)
    rules.append(rule)

    if spec.propensity.column is not None:
        propensity, rule = _propensity(table[spec.propensity.column], spec.propensity.column)
        rules.append(rule)
    elif spec.propensity.by_strategy is not None:
        by_strategy = spec.propensity.by_strategy
        propensity = pa.array(np.array([by_strategy.get(s, np.nan) for s in strategy], dtype="float64"))
    else:
        propensity = pa.array(np.full(n, spec.propensity.constant, dtype="float64"))

    holdout_spec = spec.is_holdout
    if holdout_spec is not None and holdout_spec.column is not None:
        is_holdout, rule = _binary(table[holdout_spec.column], "is_holdout", holdout_spec.column, allow_missing=False)
        rules.append(rule)
    elif holdout_spec is not None:
        is_holdout = pa.array(strategy == holdout_spec.holdout_strategy, type=pa.bool_())
    else:
        is_holdout = pa.array(np.zeros(n, dtype=bool))

    outcomes: dict[str, pa.Array] = {}
    for key in ("visited", "converted"):
        name = getattr(spec.outcomes, key)
        if name is None:
            outcomes[key] = pa.nulls(n, pa.bool_())
        else:
            outcomes[key], rule = _binary(table[name], f"outcomes.{key}", name, allow_missing=True)
            rules.append(rule)
    if spec.outcomes.revenue is None:
        outcomes["revenue"] = pa.nulls(n, pa.float64())
    else:
        outcomes["revenue"], rule = _revenue(table[spec.outcomes.revenue], spec.outcomes.revenue)
        rules.append(rule)

    quarantined = None
    if on_bad_rows == "quarantine":
        quarantined = _quarantine_rows(path, fmt, rules, table)
        if quarantined is not None and quarantined.num_rows == n:
            _raise_broken_rows(path, fmt, rules)  # nothing valid: say why as an error, naming the first rows
    else:
        _raise_broken_rows(path, fmt, rules)

    midnight = datetime.combine(spec.campaign_date, datetime.min.time(), UTC)
    ts = pa.repeat(pa.scalar(midnight, CAMPAIGN_LOG_SCHEMA.field("ts").type), n)
    campaign = pa.table(
        {
            "campaign_id": pa.repeat(pa.scalar(spec.campaign_id, pa.string()), n),
            "customer_id": ids,
            "ts": ts,
            "strategy": pa.array(strategy, type=pa.string()),
            "propensity": propensity,
            "is_holdout": is_holdout,
            "visited": outcomes["visited"],
            "converted": outcomes["converted"],
            "revenue": outcomes["revenue"],
            "updated_at": ts,
        },
        schema=CAMPAIGN_LOG_SCHEMA,
    )
    attributes = pa.table([ids, *(table[c] for c in spec.features)], names=["customer_id", *spec.features])

    log_path = root / "campaign_log" / f"ds={spec.ds}" / f"{spec.dataset}.parquet"
    attributes_path = root / "customer_attributes" / f"ds={spec.ds}" / f"{spec.dataset}.parquet"
    quarantine_path = root / "quarantine" / f"ds={spec.ds}" / f"{spec.dataset}.parquet"
    if spec.split is not None:  # held out where the split column holds one of test_values
        raw = pc.cast(table[spec.split.column], pa.string())
        test = pc.fill_null(pc.is_in(raw, pa.array(spec.split.test_values, pa.string())), False)
        attributes = attributes.append_column(SPLIT_COLUMN, pc.if_else(test, "test", "train"))
    kept = n
    if quarantined is not None:  # generated ids keep the numbering of the original rows
        keep = ~np.logical_or.reduce([r.broken for r in rules])
        campaign, attributes = campaign.filter(pa.array(keep)), attributes.filter(pa.array(keep))
        strategy, kept = strategy[keep], int(keep.sum())
        _write_atomic(quarantined, quarantine_path)
        log.warning("%s: %d of %d rows quarantined in %s", path, quarantined.num_rows, n, quarantine_path)
    elif quarantine_path.exists():  # a rerun without bad rows: nothing of the earlier run is left set aside
        quarantine_path.unlink()
    _write_atomic(campaign, log_path)
    _write_atomic(attributes, attributes_path)
    _write_manifest(root, spec, label or str(path), kept, n - kept)

    counts = pd.Series(strategy).value_counts()
    per_strategy = {name: int(counts.get(name, 0)) for name in spec.strategy.names}
    result = ImportResult(
        dataset=spec.dataset,
        campaign_id=spec.campaign_id,
        ds=spec.ds,
        rows=kept,
        per_strategy=per_strategy,
        holdouts=int(pc.sum(campaign["is_holdout"]).as_py() or 0),
        campaign_log=log_path,
        customer_attributes=attributes_path,
        quarantined=n - kept,
        quarantine=quarantine_path if quarantined is not None else None,
    )
    log.info(
        "imported %d rows of %s as campaign %s (ds=%s): %s",
        kept,
        label or path,
        spec.campaign_id,
        spec.ds,
        ", ".join(f"{k} {v}" for k, v in per_strategy.items()),
    )
    return result


def _write_manifest(root: Path, spec: CampaignMapping, source: str, rows: int, quarantined: int) -> None:
    """``<root>/dataset.json``: the mapping the data was imported with (training and scoring read it)."""
    manifest = {
        "mapping": spec.model_dump(mode="json"),
        "source_file": source,
        "rows": rows,
        "quarantined": quarantined,
        "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json_atomic(root / MANIFEST, manifest)


def write_json_atomic(path: Path, manifest: dict[str, Any]) -> None:
    """``manifest`` as JSON at ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise CampaignImportError(f"{path}: cannot write: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _write_atomic(table: pa.Table, path: Path) -> None:
    """Write Parquet through a temporary file in the target folder and an atomic rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as fh:
                pq.write_table(table.replace_schema_metadata(None), fh, compression="zstd")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise CampaignImportError(f"{path}: cannot write: {exc}") from None
    log.info("wrote %s (%d rows)", path, table.num_rows)
