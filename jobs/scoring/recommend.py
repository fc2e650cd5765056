"""Top-N product recommendations by item-based collaborative filtering (item co-occurrence, implicit feedback).

For the customers assigned ``email_recommendations``: every customer's recent interactions
(views 1, add-to-cart 3, purchases 5; the last ``window_days`` before the run date, at most
``history_items`` distinct products per customer, 10) give item vectors over customers; two items are
similar by the cosine of those vectors (co-occurrence of the same customers, weighted), and each
item keeps its ``neighbours`` most similar items (20). A customer's score for a candidate product
is the sum of its similarity to the products in the customer's history, weighted by the
customer's interaction strength. Products the customer
already bought and products no longer sold (inactive in the latest catalogue) are excluded; ties
break by product popularity, then id, so the result is deterministic. Customers with no history
get the most popular active products they have not bought.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)
WEIGHTS = {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0}


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


def active_products(products: DataFrame, as_of: str) -> DataFrame:
    """Product ids sold on ``as_of``: the latest version before it, active."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy("product_id").orderBy(F.col("updated_at").desc_nulls_last(), F.col("ds").desc())
    latest = products.where(F.col("ds") < F.lit(as_of)).withColumn("_r", F.row_number().over(w)).where("_r = 1")
    return latest.where(F.coalesce(F.col("is_active"), F.lit(True))).select("product_id")


def _top(frame: DataFrame, key: str, value: Column, order: Column, k: int, alias: str) -> DataFrame:
    """Per ``key``, the ``k`` values with the smallest ``order`` (ascending): one aggregate, no window sort."""
    from pyspark.sql import functions as F

    return frame.groupBy(key).agg(F.min_by(value, order, k).alias(alias))


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
) -> DataFrame:
    """(customer_id, recommended_products: array<string> of at most ``top_n``) for every customer in ``customers``.

    ``customers`` needs a ``customer_id`` column (the customers to recommend for). Pure transform.
    Every top-k (a customer's history, an item's neighbours, a customer's recommendations) is a
    bounded aggregate (``min_by`` with k), not a window over all candidate rows, so the work stays
    linear in the targets: at most ``history_items`` x ``neighbours`` candidate rows per target.
    """
    from pyspark.sql import functions as F

    inter = interactions(events, orders, as_of, window_days)
    active = active_products(products, as_of)
    positive = inter.where("weight > 0")
    # each customer's strongest recent products (bounded, so co-occurrence stays linear in customers)
    strongest = _top(
        positive,
        "customer_id",
        F.struct("product_id", "weight"),
        F.struct(-F.col("weight"), F.col("product_id")),
        history_items,
        "_h",
    )
    history = strongest.select("customer_id", F.explode("_h").alias("_h")).select("customer_id", "_h.*")
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
    popularity = positive.groupBy("product_id").agg(F.sum("weight").alias("popularity"))
    targets = customers.select("customer_id").distinct()
    target_history = history.join(targets, "customer_id")
    bought = inter.where("bought").select("customer_id", "product_id")
    candidates = (
        target_history.join(F.broadcast(sim), target_history.product_id == sim.item)
        .groupBy("customer_id", F.col("other").alias("product_id"))
        .agg(F.sum(F.col("weight") * F.col("sim")).alias("score"))
        .join(F.broadcast(active), "product_id")
        .join(bought, ["customer_id", "product_id"], "left_anti")
        .join(F.broadcast(popularity), "product_id", "left")
    )
    ranked = _top(
        candidates,
        "customer_id",
        F.col("product_id"),
        F.struct(-F.col("score"), -F.coalesce("popularity", F.lit(0.0)), F.col("product_id")),
        top_n,
        "_recs",
    )
    # customers with fewer than top_n candidates are filled with the most popular active products they
    # have not bought (the whole list for customers with no history)
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
    recs, owned = (
        F.coalesce("_recs", F.array().cast("array<string>")),
        F.coalesce("_b", F.array().cast("array<string>")),
    )
    fill = F.filter("_popular", lambda p: ~F.array_contains(recs, p) & ~F.array_contains(owned, p))
    return (
        targets.join(ranked, "customer_id", "left")
        .join(target_bought, "customer_id", "left")
        .crossJoin(F.broadcast(popular))
        .select("customer_id", F.slice(F.concat(recs, fill), 1, top_n).alias("recommended_products"))
    )
