"""Top-N product recommendations: item co-occurrence blended with content similarity (implicit feedback).

For the customers assigned ``email_recommendations``. Every customer's recent interactions (views 1,
add-to-cart 3, purchases 5; the last ``window_days`` before the run date, at most ``history_items``
distinct products per customer, 10) feed two scores of a candidate product:

- **co-occurrence** (collaborative): items are vectors over customers; two items are similar by the
  cosine of those vectors, each item keeping its ``neighbours`` most similar items (20); a candidate
  scores the sum of its similarity to the customer's products, weighted by interaction strength;
- **content**: the customer's taste profile over product attributes (interaction weight per category,
  and per price band of the category: terciles of price within it); a candidate scores its category's
  weight plus ``price_band_weight`` x its (category, band)'s weight. Candidates are
  the ``content_pool`` most popular active products of each (category, band) of the customer's
  ``content_categories`` strongest categories.

Each score is divided by that of the customer's best remaining candidate (after the exclusions below),
then the two are blended with weight ``alpha = n / (n + history_half)`` on co-occurrence, ``n`` the
customer's number of distinct products interacted with in the window: few interactions, mostly
content; many, mostly co-occurrence (``history_half`` 0: co-occurrence only). Products the customer
already bought and products no longer sold (inactive in the latest catalogue) are never recommended;
ties break by product popularity, then id, so the result is deterministic. Customers with no
history, and lists short of ``top_n``, get the most popular active products the customer has not
bought. ``method="cooccurrence"`` and ``"popularity"`` give the collaborative part alone and the
popularity list alone (the baselines of the benchmark).
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)
WEIGHTS = {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0}
PRICE_BANDS = 3
Method = Literal["hybrid", "cooccurrence", "popularity"]
METHODS: tuple[Method, ...] = ("hybrid", "cooccurrence", "popularity")


def interactions(events: DataFrame, orders: DataFrame, as_of: str, window_days: int = 90) -> DataFrame:
    """(customer_id, product_id, weight, bought) from events and order items strictly before ``as_of``."""
    from pyspark.sql import functions as F

    start = (date.fromisoformat(as_of) - timedelta(days=window_days)).isoformat()
    in_window = (F.col("ts") >= F.lit(start).cast("timestamp")) & (F.col("ts") < F.lit(as_of).cast("timestamp"))
    weight = F.lit(0.0)
    for kind, w in WEIGHTS.items():
        weight = F.when(F.col("event_type") == kind, F.lit(w)).otherwise(weight)
    ev = events.where(in_window & F.col("product_id").isNotNull() & F.col("event_type").isin(*WEIGHTS)).select(
        "customer_id", "product_id", weight.alias("weight"), F.lit(False).alias("bought")
    )
    bought = (
        orders.where(F.col("ts") < F.lit(as_of).cast("timestamp"))
        .select("customer_id", F.explode("items").alias("item"))
        .select("customer_id", F.col("item.product_id").alias("product_id"))
        .where(F.col("product_id").isNotNull())
        .select("customer_id", "product_id", F.lit(0.0).alias("weight"), F.lit(True).alias("bought"))
    )
    return (
        ev.unionByName(bought)
        .groupBy("customer_id", "product_id")
        .agg(F.sum("weight").alias("weight"), F.max("bought").alias("bought"))
    )


def _latest(products: DataFrame, as_of: str) -> DataFrame:
    """Every product's latest version before ``as_of``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy("product_id").orderBy(F.col("updated_at").desc_nulls_last(), F.col("ds").desc())
    return products.where(F.col("ds") < F.lit(as_of)).withColumn("_r", F.row_number().over(w)).where("_r = 1")


def active_products(products: DataFrame, as_of: str) -> DataFrame:
    """Product ids sold on ``as_of``: the latest version before it, active."""
    from pyspark.sql import functions as F

    return _latest(products, as_of).where(F.coalesce(F.col("is_active"), F.lit(True))).select("product_id")


def product_attributes(products: DataFrame, as_of: str, bands: int = PRICE_BANDS) -> DataFrame:
    """(product_id, category, band, active) of every product's latest version before ``as_of``.

    ``band`` is the price band within the category (1 = cheapest ``1/bands`` of its products); products
    without a category get none (no content similarity), products without a price no band.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    latest = _latest(products, as_of).select(
        "product_id",
        F.lower(F.trim("category")).alias("category"),
        F.col("price").cast("double").alias("price"),
        F.coalesce(F.col("is_active"), F.lit(True)).alias("active"),
    )
    priced = latest.where(F.col("category").isNotNull() & F.col("price").isNotNull())
    banded = priced.select(
        "product_id",
        F.ntile(bands).over(Window.partitionBy("category").orderBy("price", "product_id")).alias("band"),
    )
    return latest.join(banded, "product_id", "left").select("product_id", "category", "band", "active")


def _top(frame: DataFrame, key: str | list[str], value: Column, order: Column, k: int, alias: str) -> DataFrame:
    """Per ``key``, the ``k`` values with the smallest ``order`` (ascending): one aggregate, no window sort."""
    from pyspark.sql import functions as F

    return frame.groupBy(key).agg(F.min_by(value, order, k).alias(alias))


def _cooccurrence(history: DataFrame, target_history: DataFrame, neighbours: int) -> DataFrame:
    """(customer_id, product_id, score): sum over the target's products of weight x cosine of the item pair."""
    from pyspark.sql import functions as F

    norms = history.groupBy("product_id").agg(F.sqrt(F.sum(F.col("weight") ** 2)).alias("norm"))
    a, b = history.alias("a"), history.alias("b")
    pairs = (
        a.join(b, on=F.col("a.customer_id") == F.col("b.customer_id"))
        .where(F.col("a.product_id") != F.col("b.product_id"))
        .groupBy(F.col("a.product_id").alias("item"), F.col("b.product_id").alias("other"))
        .agg(F.sum(F.col("a.weight") * F.col("b.weight")).alias("dot"))
    )
    sim = (
        pairs.join(norms.withColumnRenamed("product_id", "item").withColumnRenamed("norm", "n1"), "item")
        .join(norms.withColumnRenamed("product_id", "other").withColumnRenamed("norm", "n2"), "other")
        .select("item", "other", (F.col("dot") / (F.col("n1") * F.col("n2"))).alias("sim"))
    )
    # each item keeps its ``neighbours`` most similar items (k-nearest-neighbour item CF): a target
    # customer then scores at most history_items x neighbours candidates, whatever the catalogue size
    nearest = _top(sim, "item", F.struct("other", "sim"), F.struct(-F.col("sim"), F.col("other")), neighbours, "_n")
    sim = nearest.select("item", F.explode("_n").alias("_n")).select("item", "_n.*")
    return (
        target_history.join(F.broadcast(sim), target_history.product_id == sim.item)
        .groupBy("customer_id", F.col("other").alias("product_id"))
        .agg(F.sum(F.col("weight") * F.col("sim")).alias("score"))
    )


def _content(
    target_history: DataFrame,
    attributes: DataFrame,
    popularity: DataFrame,
    price_band_weight: float,
    categories: int,
    pool: int,
) -> DataFrame:
    """(customer_id, product_id, score): the customer's weight in the category + w x its weight in the band."""
    from pyspark.sql import functions as F

    attrs = attributes.where(F.col("category").isNotNull())
    profile = (
        target_history.join(F.broadcast(attrs.select("product_id", "category", "band")), "product_id")
        .groupBy("customer_id", "category", "band")
        .agg(F.sum("weight").alias("w"))
    )
    per_category = profile.groupBy("customer_id", "category").agg(
        F.sum("w").alias("wc"),
        F.map_from_entries(F.collect_list(F.struct(F.coalesce("band", F.lit(0)), "w"))).alias("wb"),
    )
    strongest = _top(
        per_category,
        "customer_id",
        F.struct("category", "wc", "wb"),
        F.struct(-F.col("wc"), F.col("category")),
        categories,
        "_c",
    )
    liked = strongest.select("customer_id", F.explode("_c").alias("_c")).select("customer_id", "_c.*")
    # each (category, band) offers its ``pool`` most popular active products: bounded candidates per customer
    offered = attrs.where("active").join(popularity, "product_id", "left")
    offered = _top(
        offered,
        ["category", "band"],
        F.col("product_id"),
        F.struct(-F.coalesce("popularity", F.lit(0.0)), F.col("product_id")),
        pool,
        "_p",
    ).select("category", "band", F.explode("_p").alias("product_id"))
    band_share = F.coalesce(F.element_at("wb", F.coalesce("band", F.lit(0))), F.lit(0.0))
    # the score is not divided by the customer's total weight: the blend divides by the customer's best anyway
    return liked.join(F.broadcast(offered), "category").select(
        "customer_id", "product_id", (F.col("wc") + F.lit(price_band_weight) * band_share).alias("score")
    )


def _relative(col: str) -> Column:
    """``col`` divided by the customer's best (column ``_<col>``): 1 for the top candidate, 0 without any."""
    from pyspark.sql import functions as F

    return F.when(F.col(f"_{col}") > 0, F.col(col) / F.col(f"_{col}")).otherwise(F.lit(0.0))


def blend_weight(n: Column | float, history_half: float) -> Column | float:
    """Weight of co-occurrence for a customer with ``n`` distinct products in the history: n / (n + half)."""
    return n / (n + history_half) if history_half > 0 else 1.0


def recommend(
    customers: DataFrame,
    events: DataFrame,
    orders: DataFrame,
    products: DataFrame,
    as_of: str,
    top_n: int = 5,
    window_days: int = 90,
    history_items: int = 10,
    neighbours: int = 20,
    method: Method = "hybrid",
    history_half: float = 5.0,
    price_band_weight: float = 0.0,
    content_categories: int = 3,
    content_pool: int = 20,
) -> DataFrame:
    """(customer_id, recommended_products: array<string> of at most ``top_n``) for every customer in ``customers``.

    ``customers`` needs a ``customer_id`` column (the customers to recommend for); ``products`` needs
    ``category`` and ``price`` for the content part. Pure transform. Every top-k (a customer's history,
    an item's neighbours, a customer's categories, a (category, band)'s offer, a customer's
    recommendations) is a bounded aggregate (``min_by`` with k), not a window over all candidate rows,
    so the work stays linear in the targets: at most ``history_items`` x ``neighbours`` collaborative
    and ``content_categories`` x 3 bands x ``content_pool`` content candidate rows per target.
    """
    from pyspark.sql import functions as F

    if method not in METHODS:
        raise ValueError(f"unknown recommendation method {method!r}; known: {', '.join(METHODS)}")
    inter = interactions(events, orders, as_of, window_days)
    hybrid = method == "hybrid" and history_half > 0
    attributes = product_attributes(products, as_of) if hybrid else None
    active = active_products(products, as_of) if attributes is None else attributes.where("active").select("product_id")
    positive = inter.where("weight > 0")
    popularity = positive.groupBy("product_id").agg(F.sum("weight").alias("popularity"))
    targets = customers.select("customer_id").distinct()
    bought = inter.where("bought").select("customer_id", "product_id")
    ranked = None
    if method != "popularity":
        # each customer's strongest recent products (bounded, so co-occurrence stays linear in customers)
        strongest = positive.groupBy("customer_id").agg(
            F.min_by(
                F.struct("product_id", "weight"), F.struct(-F.col("weight"), F.col("product_id")), history_items
            ).alias("_h"),
            F.count("*").alias("n"),  # distinct products interacted with: the blend's history length
        )
        history = strongest.select("customer_id", F.explode("_h").alias("_h")).select("customer_id", "_h.*")
        target_history = history.join(targets, "customer_id")
        scores = _cooccurrence(history, target_history, neighbours)
        if attributes is not None:
            content = _content(
                target_history,
                attributes,
                popularity,
                price_band_weight,
                content_categories,
                content_pool,
            )
            scores = scores.select("customer_id", "product_id", F.col("score").alias("cf"), F.lit(0.0).alias("cb"))
            scores = (
                scores.unionByName(
                    content.select("customer_id", "product_id", F.lit(0.0), F.col("score")).toDF(*scores.columns)
                )
                .groupBy("customer_id", "product_id")
                .agg(F.sum("cf").alias("cf"), F.sum("cb").alias("cb"))
            )
        candidates = scores.join(F.broadcast(active), "product_id").join(
            bought, ["customer_id", "product_id"], "left_anti"
        )
        if hybrid:
            # each part relative to the customer's best remaining candidate, then blended by history length
            n = strongest.select("customer_id", "n")
            best = candidates.groupBy("customer_id").agg(F.max("cf").alias("_cf"), F.max("cb").alias("_cb"))
            alpha = blend_weight(F.col("n"), history_half)
            candidates = (
                candidates.join(best, "customer_id")
                .join(n, "customer_id")
                .select(
                    "customer_id",
                    "product_id",
                    (alpha * _relative("cf") + (1 - alpha) * _relative("cb")).alias("score"),
                )
            )
        candidates = candidates.join(F.broadcast(popularity), "product_id", "left")
        ranked = _top(
            candidates,
            "customer_id",
            F.col("product_id"),
            F.struct(-F.col("score"), -F.coalesce("popularity", F.lit(0.0)), F.col("product_id")),
            top_n,
            "_recs",
        )
    # customers with fewer than top_n candidates are filled with the most popular active products they
    # have not bought (the whole list for customers with no history, and for the popularity method)
    popular = (
        popularity.join(active, "product_id")
        .orderBy(F.col("popularity").desc(), "product_id")
        .limit(top_n * 4)
        .agg(F.collect_list(F.struct(-F.col("popularity"), F.col("product_id"))).alias("_p"))
        .select(F.transform(F.array_sort("_p"), lambda s: s["product_id"]).alias("_popular"))
    )
    target_bought = (
        bought.join(targets, "customer_id").groupBy("customer_id").agg(F.collect_set("product_id").alias("_b"))
    )
    out = targets if ranked is None else targets.join(ranked, "customer_id", "left")
    empty = F.array().cast("array<string>")
    recs, owned = (empty if ranked is None else F.coalesce("_recs", empty)), F.coalesce("_b", empty)
    fill = F.filter("_popular", lambda p: ~F.array_contains(recs, p) & ~F.array_contains(owned, p))
    return (
        out.join(target_bought, "customer_id", "left")
        .crossJoin(F.broadcast(popular))
        .select("customer_id", F.slice(F.concat(recs, fill), 1, top_n).alias("recommended_products"))
    )
