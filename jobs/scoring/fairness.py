"""Disparity audit of a scoring run: how differently tonight's assignments treat groups of customers.

Per group of a configured customer attribute (``MSP_FAIRNESS_ATTRIBUTES``; a numeric one is cut
into bands at ``MSP_FAIRNESS_BANDS``' edges, a null value is the group ``unknown``), three measures:

* ``contact_share``: share of the group given any strategy other than the catalogue's control;
* ``discount_share``: share given a strategy whose catalogue entry gives a discount
  (``discount_share`` > 0: the coupons; free shipping is a fulfilment cost, not a discount);
* ``mean_expected_profit``: mean ``expected_profit`` of the assigned strategies.

Per measure, the disparity ratio is the largest group value over the smallest, among the groups of
at least ``MSP_FAIRNESS_MIN_GROUP_SIZE`` customers (smaller groups are reported, not compared):

* smallest > 0: largest / smallest;
* all groups 0: 1.0 (nobody treated anywhere: no disparity);
* smallest <= 0 < largest: ``inf`` (one group gets nothing, or loses money, while another gains);
* largest <= 0 otherwise, or fewer than two groups compared: ``nan`` (undefined; never alerts).

A ratio above ``MSP_FAIRNESS_ALERT_RATIO`` raises a ``fairness_disparity`` alert (log +
``MSP_ALERT_WEBHOOK_URL``) without failing the run. This is a disparity report, not a fairness
guarantee: docs/SCORING.md says what it does not check.

:func:`disparity_report` is the pure form (one attribute, a pandas frame of assignments with the
attribute); :func:`audit_run` is the scoring run's step (Spark aggregates per group, only the
per-group table reaches the driver; ratios and groups go to ``marketing.model_metrics``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from jobs.pipeline.lake import PipelineError, check_ds, partition_path
from jobs.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, SparkSession

    from jobs.scoring.catalogue import Catalogue

log = logging.getLogger(__name__)
MEASURES = ("contact_share", "discount_share", "mean_expected_profit")
UNKNOWN = "unknown"
SOURCE = "fairness"
EVENT = "fairness_disparity"
#: per-group counts both the pandas and the Spark aggregation produce
COUNT_COLUMNS = ("customers", "contacted", "discounted", "profit_sum")


@dataclass(frozen=True)
class Ratio:
    """Largest over smallest group value of one measure, and which groups they are."""

    value: float
    max_group: str | None = None
    min_group: str | None = None
    max_value: float = math.nan
    min_value: float = math.nan

    def as_record(self) -> dict[str, Any]:
        """JSON-safe (a non-finite ratio becomes None, with its text in ``ratio_text``)."""
        finite = math.isfinite(self.value)
        return {
            "ratio": self.value if finite else None,
            "ratio_text": f"{self.value:.3f}" if finite else str(self.value),
            "max_group": self.max_group,
            "max_value": self.max_value,
            "min_group": self.min_group,
            "min_value": self.min_value,
        }


@dataclass
class DisparityReport:
    """One attribute's groups (a row each: counts, measures, ``included``) and the ratio per measure."""

    attribute: str
    groups: pd.DataFrame
    ratios: dict[str, Ratio]
    threshold: float
    min_group_size: int
    excluded: list[str] = field(default_factory=list)

    @property
    def alerts(self) -> list[str]:
        """Measures whose ratio is above the threshold (``inf`` is; ``nan`` never is)."""
        return [m for m, r in self.ratios.items() if r.value > self.threshold]

    def metric_rows(self) -> list[tuple[str, str, float]]:
        """``(metric, segment, value)`` rows of ``model_metrics``: ratios (segment all), then per group."""
        rows = [(f"fairness_ratio:{self.attribute}:{m}", "all", float(r.value)) for m, r in self.ratios.items()]
        rows.append((f"fairness_excluded_groups:{self.attribute}", "all", float(len(self.excluded))))
        for g in self.groups.itertuples(index=False):
            group = str(g.group)
            rows.append((f"fairness:{self.attribute}:customers", group, float(g.customers)))
            rows.append((f"fairness:{self.attribute}:included", group, float(g.included)))
            rows += [(f"fairness:{self.attribute}:{m}", group, float(getattr(g, m))) for m in MEASURES]
        return rows

    def table(self) -> str:
        """The per-group table as text, for the log."""
        return self.groups.to_string(index=False, float_format=lambda v: f"{v:.4f}")


def band_labels(edges: Sequence[float]) -> list[str]:
    """Labels of the bands cut at ``edges`` (left-closed): ``<e0``, ``[e0,e1)``, ..., ``>=ek``."""
    inner = [f"[{a:g},{b:g})" for a, b in pairwise(edges)]
    return [f"<{edges[0]:g}", *inner, f">={edges[-1]:g}"]


def group_labels(values: pd.Series, edges: Sequence[float] | None = None) -> pd.Series:
    """Each value's group: its band (numeric, with ``edges``) or its text; null is ``unknown``."""
    import numpy as np
    import pandas as pd

    missing = values.isna().to_numpy()
    if edges is None:
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            raise ValueError(f"{values.name}: a numeric attribute needs band edges (MSP_FAIRNESS_BANDS)")
        text = values.astype(object).where(~missing, UNKNOWN).map(str)
        return pd.Series(text.to_numpy(), index=values.index, name=values.name)
    labels = np.asarray(band_labels(edges), dtype=object)
    numbers = pd.to_numeric(values, errors="raise").to_numpy(dtype="float64")
    idx = np.searchsorted(np.asarray(edges, dtype="float64"), np.nan_to_num(numbers), side="right")
    return pd.Series(np.where(missing | np.isnan(numbers), UNKNOWN, labels[idx]), index=values.index, name=values.name)


def summarise_groups(
    assignments: pd.DataFrame,
    attribute: str,
    *,
    control: str,
    discount_strategies: Iterable[str],
    edges: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Per group: ``customers``, ``contacted``, ``discounted`` and ``profit_sum`` (columns ``strategy``,
    ``expected_profit`` and ``attribute`` of one row per customer)."""
    import pandas as pd

    strategy = assignments["strategy"]
    frame = pd.DataFrame(
        {
            "group": group_labels(assignments[attribute], edges),
            "contacted": (strategy != control).astype("int64"),
            "discounted": strategy.isin(list(discount_strategies)).astype("int64"),
            "profit": assignments["expected_profit"].astype("float64"),
        }
    )
    out = frame.groupby("group", sort=False).agg(
        customers=("contacted", "size"),
        contacted=("contacted", "sum"),
        discounted=("discounted", "sum"),
        profit_sum=("profit", "sum"),
    )
    return out.reset_index()


def ratio_of(values: pd.Series, groups: pd.Series) -> Ratio:
    """Largest over smallest of ``values`` (one per group), by the rules of the module docstring."""
    if len(values) < 2:
        return Ratio(math.nan)
    hi, lo = int(values.to_numpy().argmax()), int(values.to_numpy().argmin())
    largest, smallest = float(values.iloc[hi]), float(values.iloc[lo])
    if smallest > 0:
        value = largest / smallest
    elif largest == 0 and smallest == 0:
        value = 1.0
    elif smallest <= 0 < largest:
        value = math.inf
    else:
        value = math.nan
    return Ratio(value, str(groups.iloc[hi]), str(groups.iloc[lo]), largest, smallest)


def report_from_groups(
    groups: pd.DataFrame,
    attribute: str,
    *,
    min_group_size: int,
    threshold: float,
    edges: Sequence[float] | None = None,
) -> DisparityReport:
    """Measures, inclusion and ratios from per-group counts (:data:`COUNT_COLUMNS` and ``group``)."""
    order = [*band_labels(edges), UNKNOWN] if edges is not None else None
    table = groups[["group", *COUNT_COLUMNS]].copy()
    table["group"] = table["group"].astype(str)
    if order is not None:
        table["_order"] = table["group"].map({g: i for i, g in enumerate(order)})
        table = table.sort_values("_order").drop(columns="_order")
    else:  # alphabetical, unknown last
        table = table.sort_values("group", key=lambda s: s.map(lambda g: (g == UNKNOWN, g)))
    table = table.reset_index(drop=True)
    customers = table["customers"].astype("float64")
    table["contact_share"] = table["contacted"] / customers
    table["discount_share"] = table["discounted"] / customers
    table["mean_expected_profit"] = table["profit_sum"] / customers
    table["included"] = table["customers"] >= min_group_size
    compared = table[table["included"]]
    ratios = {m: ratio_of(compared[m], compared["group"]) for m in MEASURES}
    excluded = table.loc[~table["included"], "group"].tolist()
    return DisparityReport(attribute, table, ratios, threshold, min_group_size, excluded)


def disparity_report(
    assignments: pd.DataFrame,
    attribute: str,
    *,
    control: str,
    discount_strategies: Iterable[str],
    edges: Sequence[float] | None = None,
    min_group_size: int = 500,
    threshold: float = 1.25,
) -> DisparityReport:
    """The disparity report of one attribute over a pandas frame of assignments (one row per customer
    with ``strategy``, ``expected_profit`` and the attribute's column)."""
    groups = summarise_groups(
        assignments, attribute, control=control, discount_strategies=discount_strategies, edges=edges
    )
    return report_from_groups(groups, attribute, min_group_size=min_group_size, threshold=threshold, edges=edges)


def discount_strategies(catalogue: Catalogue) -> tuple[str, ...]:
    """Strategies whose catalogue entry gives a discount (``discount_share`` > 0)."""
    return tuple(s.name for s in catalogue.strategies if s.discount_share > 0)


def spark_group_column(column: str, edges: Sequence[float] | None) -> Column:
    """The Spark form of :func:`group_labels` (same labels)."""
    from pyspark.sql import functions as F

    value = F.col(column)
    if edges is None:
        return F.coalesce(value.cast("string"), F.lit(UNKNOWN))
    labels = band_labels(edges)
    number = value.cast("double")
    expr = F.when(number.isNull() | F.isnan(number), F.lit(UNKNOWN))
    for edge, label in zip(edges, labels, strict=False):
        expr = expr.when(number < F.lit(float(edge)), F.lit(label))
    return expr.otherwise(F.lit(labels[-1]))


def audit_run(
    spark: SparkSession, settings: Settings, ds: str, catalogue: Catalogue | None = None
) -> list[DisparityReport]:
    """Audit ``gold/assignments/ds=<ds>`` by the attributes of ``gold/features/ds=<ds>``: log the
    per-group tables, replace the run date's ``model_metrics`` rows of source ``fairness``, alert."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from jobs.scoring.catalogue import load_catalogue

    ds = check_ds(ds)
    attributes = list(settings.fairness_attributes)
    if not attributes:
        log.info("fairness audit off (MSP_FAIRNESS_ATTRIBUTES is empty)")
        return []
    catalogue = catalogue or load_catalogue(settings.strategy_catalogue)
    paths = {name: partition_path(settings, "gold", name, ds) for name in ("assignments", "features")}
    for path in paths.values():
        if not path.is_dir():
            raise PipelineError(f"{path} does not exist: the fairness audit of {ds} needs it")
    features = spark.read.parquet(str(paths["features"]))
    types = {f.name: f.dataType for f in features.schema.fields}
    unknown = [a for a in attributes if a not in types]
    if unknown:
        raise PipelineError(
            f"MSP_FAIRNESS_ATTRIBUTES: {', '.join(unknown)} not among the feature columns ({', '.join(sorted(types))})"
        )
    bands = {a: settings.fairness_bands.get(a) for a in attributes}
    unbanded = [a for a in attributes if bands[a] is None and isinstance(types[a], T.NumericType)]
    if unbanded:
        raise PipelineError(f"MSP_FAIRNESS_BANDS: numeric attributes need band edges: {', '.join(unbanded)}")
    textual = [a for a in attributes if bands[a] is not None and not isinstance(types[a], T.NumericType)]
    if textual:
        raise PipelineError(f"MSP_FAIRNESS_BANDS: bands of attributes that are not numeric: {', '.join(textual)}")

    discounts = discount_strategies(catalogue)
    strategy = F.col("strategy")
    per_attribute = F.array(
        *[F.struct(F.lit(a).alias("attribute"), spark_group_column(a, bands[a]).alias("group")) for a in attributes]
    )
    joined = (
        spark.read.parquet(str(paths["assignments"]))
        .select("customer_id", "strategy", "expected_profit", "model_name", "model_version")
        .join(features.select("customer_id", *attributes), "customer_id", "left")
        .select("*", F.explode(per_attribute).alias("g"))
    )
    summary = (
        joined.groupBy(F.col("g.attribute").alias("attribute"), F.col("g.group").alias("group"))
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.sum((strategy != F.lit(catalogue.control)).cast("long")).alias("contacted"),
            F.sum((strategy.isin(*discounts) if discounts else F.lit(False)).cast("long")).alias("discounted"),
            F.sum(F.col("expected_profit").cast("double")).alias("profit_sum"),
            F.first("model_name").alias("model_name"),
            F.first("model_version").alias("model_version"),
        )
        .toArrow()
        .to_pandas()
    )
    if summary.empty:
        log.warning("fairness audit of %s: no assignments", ds)
        return []
    reports = [
        report_from_groups(
            summary[summary["attribute"] == a],
            a,
            min_group_size=settings.fairness_min_group_size,
            threshold=settings.fairness_alert_ratio,
            edges=bands[a],
        )
        for a in attributes
    ]
    model = (str(summary["model_name"].iloc[0]), str(summary["model_version"].iloc[0]))
    for report in reports:
        log.info(
            "fairness %s on %s (groups under %d customers left out: %s); ratios %s:\n%s",
            report.attribute,
            ds,
            report.min_group_size,
            ", ".join(report.excluded) or "none",
            {m: round(r.value, 4) for m, r in report.ratios.items()},
            report.table(),
        )
    record(settings, ds, model, reports)
    secret = settings.alert_webhook_url
    alert_disparities(reports, ds, model, secret.get_secret_value() if secret is not None else None)
    return reports


def record(settings: Settings, ds: str, model: tuple[str, str], reports: Sequence[DisparityReport]) -> int:
    """Replace the run date's ``model_metrics`` rows of source ``fairness`` (ratios and per-group values)."""
    import pandas as pd

    from jobs.warehouse import Warehouse

    rows = [row for report in reports for row in report.metric_rows()]
    day = date.fromisoformat(ds)
    frame = pd.DataFrame(rows, columns=["metric", "segment", "value"])
    frame.insert(0, "run_date", day)
    frame.insert(1, "model_name", model[0])
    frame.insert(2, "model_version", model[1])
    frame["source"] = SOURCE
    frame["recorded_at"] = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("us")
    warehouse = Warehouse.from_settings(settings)
    warehouse.migrate()
    return warehouse.replace("model_metrics", {"run_date": day, "source": SOURCE}, frame)


def alert_disparities(
    reports: Sequence[DisparityReport], ds: str, model: tuple[str, str], webhook_url: str | None
) -> bool:
    """One ``fairness_disparity`` alert naming every ratio above its threshold; False when none is (or the
    webhook did not accept it)."""
    from jobs.alerts import event_alert

    above: list[dict[str, Any]] = [
        {"attribute": r.attribute, "measure": m, "threshold": r.threshold, **r.ratios[m].as_record()}
        for r in reports
        for m in r.alerts
    ]
    if not above:
        return False
    text = ", ".join(
        f"{a['attribute']} {a['measure']} {a['ratio_text']} ({a['max_group']} vs {a['min_group']})" for a in above
    )
    return event_alert(
        EVENT,
        f"fairness disparity on {ds} above {above[0]['threshold']:g}x: {text}",
        webhook_url,
        run_date=ds,
        model=f"{model[0]} v{model[1]}",
        ratios=above,
        excluded_groups={r.attribute: r.excluded for r in reports if r.excluded},
    )
