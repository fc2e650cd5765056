"""An independent reader of the landing zone: finds every defect from the documented contract alone.

It shares no code with the simulator, so comparing its findings with the simulator's dirt record
checks both. The ingestion tests can use it as the oracle of what cleaning must quarantine.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

EVENT_TYPES = {"view", "add_to_cart", "purchase", "search", "email_open", "email_click"}
STRATEGIES = {"no_action", "email_recommendations", "coupon_10", "coupon_20", "free_shipping"}
COLUMNS = {
    "customers": [
        "customer_id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "signup_date",
        "region",
        "channel",
        "birth_year",
        "gender",
        "updated_at",
    ],
    "events": ["event_id", "customer_id", "ts", "event_type", "product_id", "session_id"],
}
MAX_ORDER_AMOUNT = 100_000.0


@dataclass
class Row:
    file: str
    row_number: int
    key: str | None
    reasons: list[str] = field(default_factory=list)
    normalised: tuple | None = None
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def quarantined(self) -> bool:
        return any(not r.startswith("missing:") for r in self.reasons)


def _ts(value: Any) -> datetime | None:
    """An aware timestamp from ISO text (offset or Z required), or None if it is not one."""
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _limit(ds: str) -> datetime:
    return datetime.combine(date.fromisoformat(ds) + timedelta(days=2), datetime.min.time(), UTC)


def read_file(table: str, path: Path, relpath: str) -> list[Row]:
    ds = path.parent.name.removeprefix("ds=")
    if path.suffix == ".parquet":
        records = pq.read_table(path).to_pylist()
        return [_check(table, relpath, i + 1, rec, ds) for i, rec in enumerate(records)]
    rows = []
    lines = path.read_text().splitlines()
    if path.suffix == ".csv":
        header = lines[0].split(",")
        assert header == COLUMNS[table], f"{relpath}: header {header}"
        for number, line in enumerate(lines[1:], 2):
            fields = line.split(",")
            if len(fields) != len(header):
                rows.append(Row(relpath, number, None, ["malformed_record"]))
                continue
            rec = {k: (v if v != "" else None) for k, v in zip(header, fields, strict=True)}
            rows.append(_check(table, relpath, number, rec, ds))
        return rows
    for number, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rows.append(Row(relpath, number, None, ["malformed_record"]))
            continue
        rows.append(_check(table, relpath, number, rec, ds))
    return rows


def _check(table: str, relpath: str, number: int, rec: dict[str, Any], ds: str) -> Row:
    """Every contract rule that can be checked on the row alone (foreign keys come later)."""
    reasons: list[str] = []
    limit = _limit(ds)

    def required(*cols: str) -> None:
        reasons.extend(f"null_required:{c}" for c in cols if rec.get(c) is None)

    def optional(*cols: str) -> None:
        reasons.extend(f"missing:{c}" for c in cols if rec.get(c) is None)

    def timestamp(col: str) -> datetime | None:
        if rec.get(col) is None:
            return None
        parsed = _ts(rec[col])
        if parsed is None:
            reasons.append(f"wrong_type:{col}")
        elif parsed >= limit:
            reasons.append(f"future_timestamp:{col}")
        return parsed

    if table == "customers":
        key = rec.get("customer_id")
        required("customer_id", "signup_date")
        optional("region", "gender", "birth_year")
        if rec.get("signup_date") is not None:
            try:
                signup = date.fromisoformat(rec["signup_date"])
                if signup >= limit.date():
                    reasons.append("future_timestamp:signup_date")
            except ValueError:
                reasons.append("wrong_type:signup_date")
        if rec.get("birth_year") is not None:
            if not rec["birth_year"].isdigit():
                reasons.append("wrong_type:birth_year")
            elif not 1900 <= int(rec["birth_year"]) <= int(ds[:4]):
                reasons.append("out_of_range:birth_year")
        norm = tuple(
            (rec[c] or "").strip().lower() if c in {"first_name", "last_name", "email"} else rec[c]
            for c in COLUMNS["customers"]
        )
    elif table == "products":
        key = rec.get("product_id")
        required("product_id", "category", "price")
        optional("name", "margin_rate")
        if rec.get("price") is not None:
            if not _number(rec["price"]):
                reasons.append("wrong_type:price")
            elif rec["price"] < 0:
                reasons.append("out_of_range:price")
        if rec.get("margin_rate") is not None:
            if not _number(rec["margin_rate"]):
                reasons.append("wrong_type:margin_rate")
            elif not 0 <= rec["margin_rate"] <= 1:
                reasons.append("out_of_range:margin_rate")
        timestamp("updated_at")
        norm = tuple((str(v).strip().lower() if k == "category" else v) for k, v in rec.items())
    elif table == "events":
        key = rec.get("event_id")
        required("event_id", "customer_id", "ts", "event_type")
        parsed = timestamp("ts")
        if rec.get("event_type") is not None and rec["event_type"].strip().lower() not in EVENT_TYPES:
            reasons.append("invalid_value:event_type")
        norm = (
            key,
            rec.get("customer_id"),
            parsed,
            (rec.get("event_type") or "").strip().lower(),
            rec.get("product_id"),
            rec.get("session_id"),
        )
    elif table == "orders":
        key = rec.get("order_id")
        required("order_id", "customer_id", "ts", "amount")
        optional("discount")
        parsed = timestamp("ts")
        if rec.get("amount") is not None:
            if not _number(rec["amount"]):
                reasons.append("wrong_type:amount")
            elif not 0 <= rec["amount"] <= MAX_ORDER_AMOUNT:
                reasons.append("out_of_range:amount")
        norm = (
            key,
            rec.get("customer_id"),
            parsed,
            rec.get("amount"),
            rec.get("discount"),
            json.dumps(rec.get("items"), sort_keys=True),
        )
    elif table == "campaign_log":
        key = (
            None
            if rec.get("campaign_id") is None or rec.get("customer_id") is None
            else (f"{rec['campaign_id']}|{rec['customer_id']}")
        )
        required("campaign_id", "customer_id", "ts", "strategy", "propensity")
        timestamp("ts")
        if rec.get("propensity") is not None and not 0 < rec["propensity"] <= 1:
            reasons.append("out_of_range:propensity")
        if rec.get("strategy") is not None and rec["strategy"].strip().lower() not in STRATEGIES:
            reasons.append("invalid_value:strategy")
        norm = tuple((v.strip().lower() if k == "strategy" and v else v) for k, v in rec.items())
    else:
        raise ValueError(table)
    return Row(relpath, number, key, reasons, norm, rec)


@dataclass
class Audit:
    rows: dict[str, list[Row]]  # table -> rows of all its files
    duplicates: dict[tuple[str, str], int]  # (file, key) -> surplus copies (occurrences - 1)
    inconsistent_duplicates: list[tuple[str, str]]  # same key, different content after normalising

    def findings(self) -> set[tuple[str, int, str]]:
        """(file, row_number, reason) of every non-duplicate defect."""
        return {(r.file, r.row_number, reason) for rows in self.rows.values() for r in rows for reason in r.reasons}


def audit(landing: Path) -> Audit:
    """Read every file of every table under ``landing`` and find its defects."""
    rows: dict[str, list[Row]] = {}
    for table in ("customers", "products", "events", "orders", "campaign_log"):
        rows[table] = []
        for path in sorted((landing / table).glob("ds=*/*")):
            rows[table].extend(read_file(table, path, str(path.relative_to(landing))))
    customers = {r.key for r in rows["customers"] if not r.quarantined}
    products = {r.key for r in rows["products"] if not r.quarantined}
    for table, fks in {
        "events": {"customer_id": customers, "product_id": products},
        "orders": {"customer_id": customers},
        "campaign_log": {"customer_id": customers},
    }.items():
        for r in rows[table]:
            if r.quarantined or r.normalised is None:
                continue
            for col, known in fks.items():
                if r.values.get(col) is not None and r.values[col] not in known:
                    r.reasons.append(f"unknown_fk:{col}")
            if table == "orders" and any(i.get("product_id") not in products for i in r.values.get("items") or []):
                r.reasons.append("unknown_fk:items.product_id")
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for table_rows in rows.values():
        for r in table_rows:
            if not r.quarantined and r.key is not None:
                groups[(r.file, r.key)].append(r)
    duplicates = {k: len(g) - 1 for k, g in groups.items() if len(g) > 1}
    inconsistent = [k for k, g in groups.items() if len({r.normalised for r in g}) > 1]
    return Audit(rows, duplicates, inconsistent)
