"""The landing-zone input contract as code: one entry per source table.

Ingestion reads every source with an explicit schema derived from here (text formats as
strings, so that a bad value is quarantined with its own reason instead of failing the parse);
cleaning types, validates, imputes and dedupes by the rules declared here; the quality suites
and docs/INGESTION.md are generated from the same declarations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EVENT_TYPES = ("view", "add_to_cart", "purchase", "search", "email_open", "email_click")
#: strategies a campaign log may name: the shop's catalogue plus those of imported data sets
KNOWN_STRATEGIES = (
    "no_action",
    "email_recommendations",
    "coupon_10",
    "coupon_20",
    "free_shipping",
    "email_mens",
    "email_womens",
)


#: dates and timestamps before this are sentinel values (1900-01-01, 1970-01-01) or typos (0026 for 2026)
EARLIEST_DATE = "2000-01-01"
#: the longest text value a landing field may hold; a longer one is a broken export (an unclosed quote, a blob)
MAX_TEXT_CHARS = 10_000


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Spark SQL type of the silver column
    required: bool = False  # null -> quarantine (null_required)
    impute: str | None = None  # null -> this SQL expression (documented missing-value policy)
    enum: tuple[str, ...] | None = None  # trimmed, lower-cased value must be one of these
    lower: bool = False  # trim and lower-case (enums, categories, e-mail)
    min: float | None = None  # out_of_range below
    max: float | None = None  # out_of_range above
    max_sql: str | None = None  # out_of_range above this SQL expression (may use the row's ds)
    pii: str | None = None  # "hash" (salted SHA-256 into <name>_hash) or "drop"
    fk: str | None = None  # referenced table (its key must exist in silver)
    future_check: bool = False  # before EARLIEST_DATE or later than the partition date + 1 day -> quarantine
    outlier: bool = False  # flagged with <name>_outlier when above Q3 + 3 IQR of the batch


@dataclass(frozen=True)
class Source:
    name: str
    fmt: str  # csv | jsonl | parquet
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    version: str | None = None  # the latest version (by this column) wins on duplicate keys
    nested: dict[str, tuple[Column, ...]] = field(default_factory=dict)  # array<struct> columns

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


SOURCES: dict[str, Source] = {
    "customers": Source(
        name="customers",
        fmt="csv",
        key=("customer_id",),
        version="updated_at",
        columns=(
            Column("customer_id", "string", required=True),
            Column("first_name", "string", pii="drop"),
            Column("last_name", "string", pii="drop"),
            Column("email", "string", lower=True, pii="hash"),
            Column("phone", "string", pii="hash"),
            Column("signup_date", "date", required=True, future_check=True),
            Column("region", "string", lower=True, impute="'unknown'"),
            Column("channel", "string", lower=True, impute="'unknown'"),
            Column("birth_year", "int", min=1900, max_sql="year(to_date(ds))", impute="NULL"),
            Column("gender", "string", lower=True, impute="'unknown'"),
            Column("updated_at", "timestamp", future_check=True),
        ),
    ),
    "products": Source(
        name="products",
        fmt="jsonl",
        key=("product_id",),
        version="updated_at",
        columns=(
            Column("product_id", "string", required=True),
            Column("name", "string", impute="product_id"),
            Column("category", "string", required=True, lower=True),
            Column("price", "double", required=True, min=0.0, outlier=True),
            Column("margin_rate", "double", min=0.0, max=1.0, impute="category_median"),
            Column("is_active", "boolean", impute="true"),
            Column("updated_at", "timestamp", future_check=True),
        ),
    ),
    "events": Source(
        name="events",
        fmt="csv",
        key=("event_id",),
        columns=(
            Column("event_id", "string", required=True),
            Column("customer_id", "string", required=True, fk="customers"),
            Column("ts", "timestamp", required=True, future_check=True),
            Column("event_type", "string", required=True, lower=True, enum=EVENT_TYPES),
            Column("product_id", "string", fk="products"),
            Column("session_id", "string"),
        ),
    ),
    "orders": Source(
        name="orders",
        fmt="jsonl",
        key=("order_id",),
        columns=(
            Column("order_id", "string", required=True),
            Column("customer_id", "string", required=True, fk="customers"),
            Column("ts", "timestamp", required=True, future_check=True),
            Column("amount", "double", required=True, min=0.0, max=100_000.0, outlier=True),
            Column("discount", "double", min=0.0, impute="0.0"),
            Column("currency", "string", impute="'EUR'"),
        ),
        nested={
            "items": (
                Column("product_id", "string", fk="products"),
                Column("qty", "int", min=1),
                Column("price", "double", min=0.0),
            )
        },
    ),
    "campaign_log": Source(
        name="campaign_log",
        fmt="parquet",
        key=("campaign_id", "customer_id"),
        version="updated_at",
        columns=(
            Column("campaign_id", "string", required=True),
            Column("customer_id", "string", required=True, fk="customers"),
            Column("ts", "timestamp", required=True, future_check=True),
            Column("strategy", "string", required=True, lower=True, enum=KNOWN_STRATEGIES),
            Column("propensity", "double", required=True, min=1e-9, max=1.0),
            Column("is_holdout", "boolean", impute="lower(trim(strategy)) = 'no_action'"),
            Column("visited", "boolean"),
            Column("converted", "boolean"),
            Column("revenue", "double", min=0.0, outlier=True),
            Column("updated_at", "timestamp"),
        ),
    ),
}
#: cleaning order: dimensions first, so that facts can be checked against them
ORDER = ("customers", "products", "events", "orders", "campaign_log")


def contract_markdown() -> str:
    """The contract as Markdown tables (docs/INGESTION.md embeds this; a test keeps them equal)."""
    lines = []
    for name in ORDER:
        src = SOURCES[name]
        version = f"; latest version by `{src.version}`" if src.version else ""
        lines += [
            f"### {name}",
            "",
            f"Format `{src.fmt}`; key `{', '.join(src.key)}`{version}.",
            "",
            "| column | silver type | rule on null | checks | PII |",
            "|---|---|---|---|---|",
        ]
        for c in src.columns:
            null = (
                "quarantine"
                if (c.required or c.name in src.key)
                else (f"impute `{c.impute}`" if c.impute is not None else "keep null")
            )
            checks = []
            if c.enum:
                checks.append("one of " + ", ".join(f"`{v}`" for v in c.enum))
            if c.min is not None:
                checks.append(f">= {c.min:g}")
            if c.max is not None:
                checks.append(f"<= {c.max:g}")
            if c.max_sql:
                checks.append(f"<= `{c.max_sql}`")
            if c.fk:
                checks.append(f"known in silver `{c.fk}`")
            if c.future_check:
                checks.append(f"not before {EARLIEST_DATE}; not after ds + 1 day")
            if c.outlier:
                checks.append("outlier flag")
            pii = {"hash": f"salted SHA-256 -> `{c.name}_hash`", "drop": "dropped"}.get(c.pii or "", "")
            lines.append(f"| `{c.name}` | {c.type} | {null} | {'; '.join(checks)} | {pii} |")
        for nested, cols in src.nested.items():
            for c in cols:
                checks = [f">= {c.min:g}"] if c.min is not None else []
                if c.fk:
                    checks.append(f"known in silver `{c.fk}`")
                lines.append(f"| `{nested}[].{c.name}` | {c.type} | keep null | {'; '.join(checks)} | |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(contract_markdown())  # noqa: T201 - the module's CLI prints the Markdown
