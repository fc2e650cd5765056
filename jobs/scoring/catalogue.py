"""The strategy catalogue: what each strategy costs and earns, who may get it, and the limits of one run.

Read from YAML (shipped default: ``jobs/scoring/strategies.yaml``) into strict pydantic models;
every error names the file and the key path, e.g. ``strategies.yaml: strategies[2].cost_per_contact:
must be >= 0 (got -1)``. The order of ``strategies`` is the column order of every score matrix;
the control comes first (column 0).

Money per customer i and strategy s, from the models' ``p_convert`` and ``exp_revenue`` (expected
net revenue in the attribution window, already net of any coupon discount):

* expected cost = ``cost_per_contact`` + ``fulfilment_cost_per_order`` · p_convert
  (``cost_per_contact`` is paid for every customer assigned the strategy; ``discount_share`` is
  informational only, since the revenue forecast is net of it);
* expected profit = margin_rate · exp_revenue − expected cost (``margin_rate`` of the strategy, else
  of the catalogue);
* incremental profit = expected profit − expected profit of the control.

Eligibility (:meth:`Catalogue.eligibility_mask`) reads the gold feature columns of
``jobs/features/build.py``: ``has_email``, ``tenure_days``, ``days_since_last_purchase`` (999 when
the customer never bought, so ``max_days_since_last_purchase`` excludes never-buyers). The features
carry no contact dates, only ``emails_received_90d`` (non-control campaigns in the last 90 days);
``campaigns_received`` also counts control assignments and never expires, so it is not used. Both
contact rules therefore use an exact column when the frame has one, else a conservative bound that
never breaks the rule but may exclude more customers than necessary:

* ``exclude_recent_contact_days`` (at most 90): ``days_since_last_contact`` >= the days when present,
  else no contact in the last 90 days (``emails_received_90d == 0``);
* ``max_contacts_per_customer_per_30d``: ``contacts_30d`` < the limit when present, else
  ``emails_received_90d`` < the limit (the 90-day count bounds the 30-day count from above).

Both rules apply to contacting strategies only (``channel: email``). Unknown values fail a rule
(no known e-mail address, tenure or purchase recency: not eligible), except unknown contact counts,
which count as none. The control is always eligible.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jobs.settings import require_identifier

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SHIPPED = "strategies.yaml"
#: the window of ``emails_received_90d``: recent-contact rules cannot look further back
CONTACT_WINDOW_DAYS = 90
#: optional exact columns of the contact rules (not in the gold features yet)
DAYS_SINCE_CONTACT = "days_since_last_contact"
CONTACTS_30D = "contacts_30d"
CONTACTS_90D = "emails_received_90d"


class CatalogueError(ValueError):
    """A catalogue file that cannot be used; the message names the file and the key path."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Eligibility(_Spec):
    """Who may get a strategy (every rule is optional)."""

    requires_email: bool | None = None  # None: true for e-mail strategies, false otherwise
    min_tenure_days: int | None = Field(None, ge=0)
    max_days_since_last_purchase: float | None = Field(None, ge=0)
    exclude_recent_contact_days: int | None = Field(None, ge=0, le=CONTACT_WINDOW_DAYS)

    @property
    def is_empty(self) -> bool:
        rules = (self.min_tenure_days, self.max_days_since_last_purchase, self.exclude_recent_contact_days)
        return not self.requires_email and all(v is None for v in rules)


class Caps(_Spec):
    """How many customers may get a strategy in one run: a share of all customers and/or a count."""

    max_share: float | None = Field(None, ge=0, le=1)
    max_count: int | None = Field(None, ge=0)

    @property
    def is_empty(self) -> bool:
        return self.max_share is None and self.max_count is None


class Strategy(_Spec):
    """One strategy: channel, cost model, margin, eligibility rules and caps."""

    name: str
    description: str = Field(min_length=1)
    channel: Literal["email", "none"]
    cost_per_contact: float = Field(0.0, ge=0)
    discount_share: float = Field(0.0, ge=0, le=1)
    fulfilment_cost_per_order: float = Field(0.0, ge=0)
    margin_rate: float | None = Field(None, ge=0, le=1)
    eligibility: Eligibility = Field(default_factory=Eligibility)
    caps: Caps = Field(default_factory=Caps)

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        require_identifier(value, "")
        if value != value.lower():
            raise ValueError(f"{value!r} must be lower_snake_case, e.g. no_action")
        return value

    @field_validator("eligibility", "caps", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def contacts(self) -> bool:
        """Whether the strategy reaches out to the customer (subject to the contact rules)."""
        return self.channel != "none"

    @property
    def needs_email(self) -> bool:
        explicit = self.eligibility.requires_email
        return explicit if explicit is not None else self.channel == "email"


class Catalogue(_Spec):
    """The strategies of one run (control first) and the run's limits."""

    control: str
    budget: float | None = Field(None, ge=0, allow_inf_nan=True)  # .inf: no budget
    budget_per_customer: float | None = Field(None, ge=0)
    min_roi: float | None = Field(None, ge=0)
    margin_rate: float = Field(0.35, ge=0, le=1)
    max_contacts_per_customer_per_30d: int | None = Field(None, ge=0)
    holdout_share: float = Field(0.0, ge=0, le=1)
    explore_share: float = Field(0.0, ge=0, le=1)
    recommendations_top_n: int = Field(5, ge=1)
    strategies: list[Strategy] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Catalogue:
        problems: list[str] = []
        seen: dict[str, int] = {}
        for i, s in enumerate(self.strategies):
            if s.name in seen:
                first = seen[s.name]
                problems.append(f"strategies[{i}].name: duplicate strategy {s.name!r} (also strategies[{first}])")
            seen.setdefault(s.name, i)
            if s.channel == "email" and s.eligibility.requires_email is False:
                problems.append(
                    f"strategies[{i}].eligibility.requires_email: an e-mail strategy needs an e-mail address "
                    "(true, or leave it out)"
                )
            if not s.contacts and s.cost_per_contact > 0:
                problems.append(
                    f"strategies[{i}].cost_per_contact: channel none contacts nobody: "
                    f"must be 0 (got {s.cost_per_contact:g})"
                )
        if self.budget is not None and self.budget_per_customer is not None:
            problems.append(
                f"budget_per_customer: give either budget (the total of a run) or budget_per_customer, not both "
                f"(got budget {self.budget:g} and budget_per_customer {self.budget_per_customer:g})"
            )
        if self.budget is None and self.budget_per_customer is None and self.min_roi is None:
            problems.append(
                "budget: missing: give budget (the total of a run), budget_per_customer (scaled by the customers "
                "scored) or min_roi (spend while the marginal expected profit per euro is at least it)"
            )
        if self.control not in seen:
            problems.append(f"control: {self.control!r} is not one of the strategies ({', '.join(seen)})")
        elif seen[self.control] != 0:
            problems.append(
                f"strategies[{seen[self.control]}]: the control {self.control!r} must be listed first (column 0)"
            )
        else:
            problems += _control_problems(self.strategies[0])
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # --- layout ---------------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Strategy names in column order (control first)."""
        return tuple(s.name for s in self.strategies)

    @property
    def control_index(self) -> int:
        return 0

    def strategy(self, name: str) -> Strategy:
        for s in self.strategies:
            if s.name == name:
                return s
        raise KeyError(f"no strategy {name!r} in the catalogue ({', '.join(self.names)})")

    def take_columns(self, matrix: ArrayLike, columns: Sequence[str]) -> np.ndarray:
        """The catalogue's strategies, in its order, from ``matrix`` whose columns are ``columns`` (e.g. STRATEGIES)."""
        array = np.asarray(matrix)
        if array.ndim != 2 or array.shape[1] != len(columns):
            raise ValueError(f"matrix has shape {array.shape}, expected (n, {len(columns)}) for {list(columns)}")
        missing = [name for name in self.names if name not in columns]
        if missing:
            raise ValueError(f"the catalogue's strategies {missing} are not among the columns {list(columns)}")
        return array[:, [list(columns).index(name) for name in self.names]]

    # --- limits of a run -------------------------------------------------------------------------
    def budget_for(self, n_customers: int) -> float:
        """The total expected cost a run over ``n_customers`` may spend (inf when only ``min_roi`` limits it)."""
        if self.budget is not None:
            return float(self.budget)
        if self.budget_per_customer is not None:
            return float(self.budget_per_customer) * n_customers
        return float("inf")

    def objective(self, value: ArrayLike, cost: ArrayLike) -> np.ndarray:
        """What the optimiser maximises: incremental profit, less ``min_roi`` per euro spent when set.

        With ``min_roi`` r, a customer's upgrade from one strategy to a dearer one is worth making only
        while its extra expected profit per extra euro is at least r: the knapsack's budget multiplier
        held at r (and the budget, if also given, as a ceiling).
        """
        value = np.asarray(value, dtype="float64")
        if not self.min_roi:
            return value
        return value - float(self.min_roi) * np.asarray(cost, dtype="float64")

    def discount_shares(self) -> np.ndarray:
        """(K,) share of the order value each strategy gives away (the hurdle model's known discount)."""
        return np.array([s.discount_share for s in self.strategies])

    # --- money ----------------------------------------------------------------------------------
    def margin_rates(self) -> np.ndarray:
        """(K,) gross margin share per strategy."""
        return np.array([s.margin_rate if s.margin_rate is not None else self.margin_rate for s in self.strategies])

    def expected_cost(self, p_convert: ArrayLike, exp_revenue: ArrayLike | None = None) -> np.ndarray:
        """(n, K) expected cost: contact cost plus fulfilment cost times the conversion probability."""
        p = self._matrix(p_convert, "p_convert")
        self._check_columns(p, "p_convert")
        if exp_revenue is not None:
            self._check_columns(self._matrix(exp_revenue, "exp_revenue", rows=p.shape[0]), "exp_revenue")
        if np.any((p < 0) | (p > 1)):
            raise ValueError("p_convert must lie in [0, 1]")
        contact = np.array([s.cost_per_contact for s in self.strategies])
        fulfil = np.array([s.fulfilment_cost_per_order for s in self.strategies])
        return contact[None, :] + fulfil[None, :] * p

    def expected_profit(self, p_convert: ArrayLike, exp_revenue: ArrayLike) -> np.ndarray:
        """(n, K) expected profit: margin times net revenue minus expected cost."""
        cost = self.expected_cost(p_convert, exp_revenue)
        revenue = self._matrix(exp_revenue, "exp_revenue", rows=cost.shape[0])
        return self.margin_rates()[None, :] * revenue - cost

    def incremental_profit(self, p_convert: ArrayLike, exp_revenue: ArrayLike) -> np.ndarray:
        """(n, K) expected profit over the control's (column 0 is 0)."""
        profit = self.expected_profit(p_convert, exp_revenue)
        return profit - profit[:, [self.control_index]]

    def caps_for(self, n_customers: int) -> np.ndarray:
        """(K,) most customers per strategy in a run of ``n_customers`` (``n_customers`` when uncapped)."""
        out = np.full(len(self.strategies), n_customers, dtype=np.int64)
        for k, s in enumerate(self.strategies):
            if s.caps.max_share is not None:
                out[k] = min(out[k], int(np.floor(s.caps.max_share * n_customers + 1e-9)))
            if s.caps.max_count is not None:
                out[k] = min(out[k], s.caps.max_count)
        return out

    # --- eligibility ----------------------------------------------------------------------------
    def eligibility_mask(self, features: pd.DataFrame) -> np.ndarray:
        """(n, K) bool: who may get which strategy (see the module docstring for the rules)."""
        n = len(features)
        mask = np.ones((n, len(self.strategies)), dtype=bool)
        cache: dict[tuple[str, float], np.ndarray] = {}

        def column(name: str, rule: str, fill: float = np.nan) -> np.ndarray:
            """The feature as floats, unknown values replaced by ``fill`` (NaN: fails every rule)."""
            if (name, fill) not in cache:
                if name not in features:
                    raise ValueError(f"eligibility rule {rule} needs the feature column {name!r}")
                values = np.asarray(features[name].to_numpy(dtype="float64", na_value=np.nan))
                cache[name, fill] = np.where(np.isnan(values), fill, values)
            return cache[name, fill]

        for k, s in enumerate(self.strategies):
            if k == self.control_index:
                continue
            rule = s.eligibility
            where = f"strategies[{k}] ({s.name})"
            if s.needs_email:
                mask[:, k] &= column("has_email", f"{where}.requires_email", 0.0) > 0
            if rule.min_tenure_days is not None:
                mask[:, k] &= column("tenure_days", f"{where}.min_tenure_days") >= rule.min_tenure_days
            if rule.max_days_since_last_purchase is not None:
                since = column("days_since_last_purchase", f"{where}.max_days_since_last_purchase")
                mask[:, k] &= since <= rule.max_days_since_last_purchase
            if s.contacts and rule.exclude_recent_contact_days:
                mask[:, k] &= self._not_recently_contacted(features, rule.exclude_recent_contact_days, where, column)
            if s.contacts and self.max_contacts_per_customer_per_30d is not None:
                mask[:, k] &= self._under_frequency_limit(features, where, column)
        return mask

    def _not_recently_contacted(self, features: pd.DataFrame, days: int, where: str, column: Any) -> np.ndarray:
        rule = f"{where}.eligibility.exclude_recent_contact_days"
        if DAYS_SINCE_CONTACT in features:
            return column(DAYS_SINCE_CONTACT, rule, np.inf) >= days
        ok = column(CONTACTS_90D, rule, 0.0) == 0
        log.info(
            "%s: no %s column, so exclude_recent_contact_days=%d excludes everyone contacted in the last %d days "
            "(%d of %d customers)",
            where,
            DAYS_SINCE_CONTACT,
            days,
            CONTACT_WINDOW_DAYS,
            int((~ok).sum()),
            len(ok),
        )
        return ok

    def _under_frequency_limit(self, features: pd.DataFrame, where: str, column: Any) -> np.ndarray:
        limit = self.max_contacts_per_customer_per_30d
        rule = f"max_contacts_per_customer_per_30d (for {where})"
        if CONTACTS_30D in features:
            return column(CONTACTS_30D, rule, 0.0) < limit
        return column(CONTACTS_90D, rule, 0.0) < limit

    @staticmethod
    def _matrix(values: ArrayLike, name: str, rows: int | None = None) -> np.ndarray:
        array = np.asarray(values, dtype="float64")
        if array.ndim != 2:
            raise ValueError(f"{name} must be a 2-D (customers, strategies) array, got shape {array.shape}")
        if rows is not None and array.shape[0] != rows:
            raise ValueError(f"{name} has {array.shape[0]} rows, expected {rows}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} has {int((~np.isfinite(array)).sum())} non-finite values")
        return array

    def _check_columns(self, array: np.ndarray, name: str) -> None:
        if array.shape[1] != len(self.strategies):
            raise ValueError(
                f"{name} has {array.shape[1]} columns, expected {len(self.names)}: {', '.join(self.names)}"
            )


def _control_problems(control: Strategy) -> list[str]:
    """Why the control (strategies[0]) is not a plain 'do nothing' strategy, if it is not."""
    key = "strategies[0]"
    problems = []
    if control.contacts:
        problems.append(f"{key}.channel: the control {control.name!r} contacts nobody: must be none")
    for field in ("cost_per_contact", "discount_share", "fulfilment_cost_per_order"):
        value = getattr(control, field)
        if value != 0:
            problems.append(f"{key}.{field}: the control {control.name!r} costs nothing: must be 0 (got {value:g})")
    if not control.eligibility.is_empty:
        problems.append(f"{key}.eligibility: the control {control.name!r} is always eligible: leave it out")
    if not control.caps.is_empty:
        problems.append(f"{key}.caps: the control {control.name!r} is never capped: leave it out")
    return problems


# --- loading ------------------------------------------------------------------------------------


def shipped_catalogue_path() -> Path:
    """The catalogue shipped with the package."""
    return Path(str(resources.files(__package__).joinpath(SHIPPED)))


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read and validate a catalogue YAML (None: the shipped default); errors name the file and key path."""
    if path is None:
        label = SHIPPED
        text = resources.files(__package__).joinpath(SHIPPED).read_text(encoding="utf-8")
    else:
        label = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CatalogueError(f"{label}: no such catalogue file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogueError(f"{label}: cannot read the catalogue: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{label}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogueError(f"{label}: expected a mapping of keys (control, budget, strategies, ...)")
    try:
        catalogue = Catalogue.model_validate(data)
    except ValidationError as exc:
        raise CatalogueError("\n".join(_describe(label, e) for e in exc.errors())) from None
    log.debug("catalogue %s: %s", label, ", ".join(catalogue.names))
    return catalogue


def _key_path(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":
            out += f".{part}" if out else str(part)
    return out


def _known_keys(loc: Sequence[Any]) -> list[str]:
    """The keys allowed in the mapping at ``loc`` (for 'unknown key' messages)."""
    model: type[BaseModel] = Catalogue
    nested = {("strategies",): Strategy, ("eligibility",): Eligibility, ("caps",): Caps}
    for part in loc:
        if isinstance(part, str) and (part,) in nested:
            model = nested[(part,)]
    return list(model.model_fields)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


def _describe(label: str, error: Any) -> str:
    """One pydantic error as ``file: key.path: message`` (several lines for cross-key problems)."""
    loc = tuple(error["loc"])
    key = _key_path(loc)
    kind, ctx, got = error["type"], error.get("ctx") or {}, error.get("input")
    limits = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    if kind == "missing":
        message = "missing (required)"
    elif kind == "extra_forbidden":
        message = f"unknown key (known: {', '.join(_known_keys(loc[:-1]))})"
    elif kind in limits:
        bound = next(iter(ctx.values()))
        message = f"must be {limits[kind]} {_show(bound)} (got {_show(got)})"
    elif kind in {"float_type", "float_parsing"}:
        message = f"must be a number (got {_show(got)})"
    elif kind in {"int_type", "int_parsing", "int_from_float"}:
        message = f"must be a whole number (got {_show(got)})"
    elif kind in {"bool_type", "bool_parsing"}:
        message = f"must be true or false (got {_show(got)})"
    elif kind == "finite_number":
        message = f"must be a finite number (got {_show(got)})"
    elif kind == "literal_error":
        message = f"must be one of {ctx.get('expected')} (got {_show(got)})"
    elif kind == "string_too_short":
        message = "must not be empty"
    elif kind == "too_short":
        message = f"must have at least {ctx.get('min_length', 1)} entry"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
    lines = message.splitlines() or [message]
    if key:
        return "\n".join(f"{label}: {key}: {line}" for line in lines)
    return "\n".join(f"{label}: {line}" for line in lines)
