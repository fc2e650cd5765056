"""The simulator's parameters: sizes, calendar, campaign design and dirt rates."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

STRATEGIES: tuple[str, ...] = (
    "no_action",
    "email_recommendations",
    "coupon_10",
    "coupon_20",
    "free_shipping",
)
CONTROL = "no_action"
CATEGORIES: tuple[str, ...] = (
    "apparel",
    "beauty",
    "books",
    "electronics",
    "garden",
    "home",
    "sports",
    "toys",
)
REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central")
CHANNELS: tuple[str, ...] = ("web", "app", "marketplace")
GENDERS: tuple[str, ...] = ("f", "m", "x")
EVENT_TYPES: tuple[str, ...] = ("view", "add_to_cart", "purchase", "search", "email_open", "email_click")
TABLES: tuple[str, ...] = ("customers", "products", "events", "orders", "campaign_log")
#: landing file format of each table (the input contract allows any of the three per source)
FORMATS: dict[str, str] = {
    "customers": "csv",
    "products": "jsonl",
    "events": "csv",
    "orders": "jsonl",
    "campaign_log": "parquet",
}
#: share of order value given away by each strategy (free shipping costs the shop, not the buyer)
DISCOUNT_RATE: dict[str, float] = {"coupon_10": 0.10, "coupon_20": 0.20}
#: campaign propensity designs, cycled over campaign dates (see docs/SIMULATOR.md)
DESIGNS: tuple[str, ...] = ("uniform", "control_heavy", "channel_targeted")


@dataclass(frozen=True)
class DirtRates:
    """Share of a file's clean rows for which one dirty row of each kind is injected.

    ``optional_null`` blanks an optional field of an existing row in place (the row stays
    valid and is imputed downstream); every other kind adds a row: duplicates (exact or
    near, same key) that cleaning must collapse, and invalid rows that must be quarantined.
    """

    exact_duplicate: float = 0.010
    near_duplicate: float = 0.005
    optional_null: float = 0.010
    required_null: float = 0.002
    malformed: float = 0.002
    wrong_type: float = 0.002
    bad_value: float = 0.002
    unknown_fk: float = 0.003
    future_ts: float = 0.002

    def scaled(self, factor: float) -> DirtRates:
        """All rates multiplied by ``factor`` (0 gives a clean landing zone)."""
        if factor < 0:
            raise ValueError(f"dirt scale must be >= 0, got {factor}")
        scaled = {k: v * factor for k, v in dataclasses.asdict(self).items()}
        if too_high := {k: round(v, 4) for k, v in scaled.items() if v > 1}:
            raise ValueError(f"dirt rates above 1 after scaling by {factor}: {too_high}")
        return DirtRates(**scaled)

    def with_overrides(self, overrides: dict[str, float]) -> DirtRates:
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown dirt kind(s) {unknown}; known: {sorted(known)}")
        bad = {k: v for k, v in overrides.items() if not 0 <= v <= 0.5}
        if bad:
            raise ValueError(f"dirt rates must lie in [0, 0.5]: {bad}")
        return dataclasses.replace(self, **overrides)


@dataclass(frozen=True)
class SimConfig:
    """Everything that determines the simulated shop; equal configs give byte-identical output."""

    seed: int = 42
    customers: int = 20_000
    products: int = 400
    days: int = 60
    start: date = date(2026, 9, 1)
    attribution_days: int = 7
    first_campaign_day: int = 7
    campaign_every: int = 14
    campaign_share: float = 0.5
    new_customer_share: float = 0.08
    customer_update_share: float = 0.02
    product_change_share: float = 0.15
    #: an injected population shift (0: none): from day ``shift_day`` on, a wave of ``shift_share`` x customers
    #: signs up through the marketplace, young and price sensitive (what drift monitoring must notice)
    shift_day: int = 0
    shift_share: float = 0.0
    dirt: DirtRates = field(default_factory=DirtRates)

    def __post_init__(self) -> None:
        checks = {
            "customers": self.customers >= 10,
            "products": self.products >= len(CATEGORIES) * 2,
            "days": self.days >= 1,
            "attribution_days": 1 <= self.attribution_days <= 60,
            "campaign_every": self.campaign_every >= 1,
            "first_campaign_day": self.first_campaign_day >= 1,
            "campaign_share": 0 < self.campaign_share <= 1,
            "new_customer_share": 0 <= self.new_customer_share < 1,
            "shift_day": 0 <= self.shift_day < max(self.days, 1),
            "shift_share": 0 <= self.shift_share < 1 and (self.shift_share == 0 or self.shift_day > 0),
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid simulator config: {', '.join(failed)} out of range ({self})")

    @property
    def end(self) -> date:
        """The last simulated day (inclusive)."""
        return self.start + timedelta(days=self.days - 1)

    def day(self, index: int) -> date:
        return self.start + timedelta(days=index)

    def campaign_days(self) -> list[int]:
        """Day indices on which a randomised campaign is sent."""
        return list(range(self.first_campaign_day, self.days, self.campaign_every))

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["start"] = self.start.isoformat()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimConfig:
        data = dict(data)
        data["start"] = date.fromisoformat(data["start"])
        data["dirt"] = DirtRates(**data["dirt"])
        return cls(**data)
