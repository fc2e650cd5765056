"""Import a shop's order history alone (no events, no campaigns): ``msp import orders FILE --mapping M``.

A YAML mapping (:class:`OrdersMapping`, ``kind: orders``) names the customer id, the order date and
the amount (a column, or price x quantity), and optionally the order id (rows are then order lines,
summed per order) and the quantity. Every row is checked; rows that break a rule (no customer, a
date that does not parse, an amount that is not a non-negative number: a return or a cancellation
is set aside, not netted) fail the import with the file, line and rule, or go to quarantine with
the reason (``on_bad_rows: quarantine``). The import writes, each atomically,

- ``<root>/orders/orders.parquet``: one row per order (``customer_id, order_id, ts, amount,
  quantity, lines``),
- ``<root>/quarantine/orders.parquet`` when rows were set aside, and
- ``<root>/dataset.json``: ``kind: orders``, the mapping, the counts, the first and last order,
  and which of the platform's tables the data set has (only orders; the rest are reported missing).

``msp train|score|evaluate --dataset NAME`` then fit a repeat-purchase propensity and a next-period
value model on RFM features (:mod:`jobs.datasets.orders`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import AfterValidator, Field, PrivateAttr, model_validator

from jobs.imports.campaign_log import (
    _STRATEGY_NAME,
    BAD_ROWS,
    MANIFEST,
    BadRowsRule,
    CampaignImportError,
    ColumnName,
    DatasetName,
    _as_text,
    _format_of,
    _numbers,
    _quarantine_rows,
    _raise_broken_rows,
    _raw,
    _Rule,
    _Spec,
    _write_atomic,
    load_yaml_model,
    read_columns,
    write_json_atomic,
)

log = logging.getLogger(__name__)

#: the platform's inputs an orders-only data set does not have (reported in its manifest, not crashed on)
ABSENT_TABLES = ("events", "campaign_log", "customer_attributes", "products")


def _strategy_name(value: str) -> str:
    if not _STRATEGY_NAME.match(value) or value == "no_action":
        raise ValueError(f"strategy {value!r} must be lower_snake_case and not no_action, e.g. email")
    return value


StrategyName = Annotated[str, AfterValidator(_strategy_name)]


class TargetingSpec(_Spec):
    """How ``msp score --dataset`` targets by value: who gets ``strategy`` and what a contact costs.

    ``contact_share``: the share of customers contacted (highest expected value first), or
    ``budget_per_customer``: spend at most it x the customers scored; or ``min_value``: contact while
    the expected next-period value is at least it. One of them (default: ``contact_share: 0.2``).
    """

    strategy: StrategyName = "contact"
    cost_per_contact: float = Field(0.0, ge=0)
    contact_share: float | None = Field(None, gt=0, le=1)
    budget_per_customer: float | None = Field(None, gt=0)
    min_value: float | None = Field(None, ge=0)
    horizon_days: int = Field(90, ge=7, le=730)

    @model_validator(mode="after")
    def _one_rule(self) -> TargetingSpec:
        given = [k for k in ("contact_share", "budget_per_customer", "min_value") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of contact_share, budget_per_customer or min_value, not {' and '.join(given)}")
        if self.budget_per_customer is not None and self.cost_per_contact == 0:
            raise ValueError("budget_per_customer needs a cost_per_contact above 0")
        return self

    @property
    def rule(self) -> tuple[str, float]:
        for key in ("budget_per_customer", "min_value", "contact_share"):
            if (value := getattr(self, key)) is not None:
                return key, float(value)
        return "contact_share", 0.2


class OrdersMapping(_Spec):
    """How an order-history export maps into ``orders`` (see ``docs/DATASETS.md``)."""

    kind: Literal["orders"]
    dataset: DatasetName
    customer_id: ColumnName
    order_date: ColumnName
    #: strftime format of order_date when it is not ISO 8601 (e.g. "%m/%d/%Y %H:%M")
    date_format: str | None = None
    order_id: ColumnName | None = None
    amount: ColumnName | None = None
    price: ColumnName | None = None
    quantity: ColumnName | None = None
    targeting: TargetingSpec = Field(default_factory=TargetingSpec)
    on_bad_rows: BadRowsRule = "fail"
    _source: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _amount_or_price_times_quantity(self) -> OrdersMapping:
        if self.amount is None and (self.price is None or self.quantity is None):
            raise ValueError("give amount (a column), or price and quantity (amount = price x quantity)")
        if self.amount is not None and self.price is not None:
            raise ValueError("give amount or price (with quantity), not both")
        return self

    @property
    def source_label(self) -> str:
        return str(self._source) if self._source is not None else "the mapping"

    def required_columns(self) -> dict[str, str]:
        keys = {
            "customer_id": self.customer_id,
            "order_date": self.order_date,
            "order_id": self.order_id,
            "amount": self.amount,
            "price": self.price,
            "quantity": self.quantity,
        }
        out: dict[str, list[str]] = {}
        for key, column in keys.items():
            if column is not None:
                out.setdefault(column, []).append(key)
        return {column: ", ".join(found) for column, found in out.items()}


def load_orders_mapping(path: str | Path) -> OrdersMapping:
    return load_yaml_model(path, OrdersMapping)


def is_orders_mapping(path: str | Path) -> bool:
    """Whether the YAML at ``path`` says ``kind: orders``."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == "orders"


@dataclass(frozen=True)
class OrdersImportResult:
    dataset: str
    lines: int
    orders: int
    customers: int
    first_order: str
    last_order: str
    path: Path
    quarantined: int = 0
    quarantine: Path | None = None


def _dates(column: pa.ChunkedArray, name: str, fmt: str | None) -> tuple[np.ndarray, _Rule]:
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        values = pd.to_datetime(pd.Series(column.to_pandas()), utc=True, errors="coerce")
    else:
        text = pd.Series(column.to_pandas(), dtype=object).astype("string").str.strip()
        values = pd.to_datetime(text, format=fmt or "ISO8601", utc=True, errors="coerce")
    broken = values.isna().to_numpy()
    hint = f"the format {fmt!r}" if fmt else "ISO 8601 (set date_format in the mapping)"

    def describe(i: int, locate: Any) -> str:
        if column[i].as_py() is None:
            return f"order_date ({name}): missing"
        return f"order_date ({name}): {_raw(column, i)} is not a date in {hint}"

    return values.dt.tz_localize(None).to_numpy(dtype="datetime64[us]"), _Rule(broken, describe)


def _non_negative(column: pa.ChunkedArray, key: str, name: str) -> tuple[np.ndarray, _Rule]:
    values, missing, unparsable = _numbers(column)
    with np.errstate(invalid="ignore"):
        negative = ~missing & ~unparsable & (values < 0)
    broken = missing | unparsable | ~np.isfinite(np.where(missing | unparsable, 0.0, values)) | negative

    def describe(i: int, locate: Any) -> str:
        if missing[i]:
            return f"{key} ({name}): missing"
        if negative[i]:
            return f"{key} ({name}): {_raw(column, i)} is negative (a return or a cancellation?)"
        return f"{key} ({name}): {_raw(column, i)} is not a number"

    return values, _Rule(broken, describe)


def import_orders(
    file: str | Path, mapping: OrdersMapping | str | Path, output_root: str | Path, on_bad_rows: str | None = None
) -> OrdersImportResult:
    """Map the order lines of ``file`` into one row per order under ``output_root``."""
    spec = mapping if isinstance(mapping, OrdersMapping) else load_orders_mapping(mapping)
    rule = on_bad_rows or spec.on_bad_rows
    if rule not in BAD_ROWS:
        raise CampaignImportError(f"on_bad_rows {rule!r} is not one of {', '.join(BAD_ROWS)}")
    path, root = Path(file), Path(output_root)
    fmt = _format_of(path)
    text = [c for c in (spec.customer_id, spec.order_id) if c is not None]
    table = read_columns(path, fmt, spec.required_columns(), text)
    n = table.num_rows
    if n == 0:
        raise CampaignImportError(f"{path}: no data rows")

    ids = pd.Series(_as_text(table[spec.customer_id], path, spec.customer_id).to_pandas(), dtype=object)
    no_id = (ids.isna() | (ids.astype("string").str.strip() == "")).to_numpy()
    id_rule = _Rule(no_id, lambda i, locate: f"customer_id ({spec.customer_id}): missing")
    ts, date_rule = _dates(table[spec.order_date], spec.order_date, spec.date_format)
    rules = [id_rule, date_rule]
    quantity = None
    if spec.quantity is not None:
        quantity, q_rule = _non_negative(table[spec.quantity], "quantity", spec.quantity)
        rules.append(q_rule)
    if spec.amount is not None:
        amount, a_rule = _non_negative(table[spec.amount], "amount", spec.amount)
    else:
        amount, a_rule = _non_negative(table[str(spec.price)], "price", str(spec.price))
        amount = amount * quantity  # type: ignore[operator]
    rules.append(a_rule)

    quarantine_path = root / "quarantine" / "orders.parquet"
    quarantined = None
    if rule == "quarantine":
        quarantined = _quarantine_rows(path, fmt, rules, table)
        if quarantined is not None and quarantined.num_rows == n:
            _raise_broken_rows(path, fmt, rules)
    else:
        _raise_broken_rows(path, fmt, rules)
    keep = ~np.logical_or.reduce([r.broken for r in rules])

    lines = pd.DataFrame(
        {
            "customer_id": ids.astype(str).str.strip().to_numpy(),
            "order_id": (
                pd.Series(_as_text(table[spec.order_id], path, spec.order_id).to_pandas(), dtype=object)
                .fillna("")
                .astype(str)
                .to_numpy()
                if spec.order_id is not None
                else np.arange(1, n + 1).astype(str)
            ),
            "ts": ts,
            "amount": amount,
            "quantity": quantity if quantity is not None else np.full(n, np.nan),
        }
    )[keep]
    orders = (
        lines.groupby(["customer_id", "order_id"], as_index=False, sort=True)
        .agg(ts=("ts", "min"), amount=("amount", "sum"), quantity=("quantity", "sum"), lines=("ts", "size"))
        .sort_values(["ts", "customer_id", "order_id"], kind="stable")
        .reset_index(drop=True)
    )
    if spec.quantity is None:
        orders["quantity"] = np.nan
    table_out = pa.Table.from_pandas(orders, preserve_index=False)
    orders_path = root / "orders" / "orders.parquet"
    if quarantined is not None:
        _write_atomic(quarantined, quarantine_path)
        log.warning("%s: %d of %d rows quarantined in %s", path, quarantined.num_rows, n, quarantine_path)
    elif quarantine_path.exists():
        quarantine_path.unlink()
    _write_atomic(table_out, orders_path)
    first, last = orders["ts"].min(), orders["ts"].max()
    result = OrdersImportResult(
        dataset=spec.dataset,
        lines=int(keep.sum()),
        orders=len(orders),
        customers=int(orders["customer_id"].nunique()),
        first_order=first.date().isoformat(),
        last_order=last.date().isoformat(),
        path=orders_path,
        quarantined=n - int(keep.sum()),
        quarantine=quarantine_path if quarantined is not None else None,
    )
    write_json_atomic(
        root / MANIFEST,
        {
            "kind": "orders",
            "mapping": spec.model_dump(mode="json"),
            "source_file": str(path),
            "rows": result.lines,
            "orders": result.orders,
            "customers": result.customers,
            "quarantined": result.quarantined,
            "first_order": result.first_order,
            "last_order": result.last_order,
            "tables": {"orders": True, **dict.fromkeys(ABSENT_TABLES, False)},
            "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    log.info(
        "imported %d order lines of %s as %d orders of %d customers (%s to %s); absent: %s",
        result.lines,
        path,
        result.orders,
        result.customers,
        result.first_order,
        result.last_order,
        ", ".join(ABSENT_TABLES),
    )
    return result
