"""Hybrid recommendations (item co-occurrence + content) on tiny inline frames with exact expectations."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import types as T

EV = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField("ts", T.TimestampType()),
        T.StructField("event_type", T.StringType()),
        T.StructField("product_id", T.StringType()),
    ]
)
ITEM = T.StructType([T.StructField("product_id", T.StringType()), T.StructField("qty", T.IntegerType())])
ORD = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField("ts", T.TimestampType()),
        T.StructField("items", T.ArrayType(ITEM)),
    ]
)
PROD = T.StructType(
    [
        T.StructField("product_id", T.StringType()),
        T.StructField("category", T.StringType()),
        T.StructField("price", T.DoubleType()),
        T.StructField("is_active", T.BooleanType()),
        T.StructField("updated_at", T.TimestampType()),
        T.StructField("ds", T.StringType()),
    ]
)
D = datetime(2026, 10, 1, 12)


def frames(spark, extra_events=()):
    events = spark.createDataFrame(
        [
            # c1 and c2 both like A and B; c2 also C; c3 likes A only; c4 has no history
            ("c1", D, "view", "A"),
            ("c1", D, "view", "B"),
            ("c2", D, "view", "A"),
            ("c2", D, "add_to_cart", "B"),
            ("c2", D, "view", "C"),
            ("c3", D, "view", "A"),
            ("c5", D, "view", "A"),
            ("c5", D, "view", "D"),
            *extra_events,
        ],
        EV,
    )
    orders = spark.createDataFrame([("c3", D, [("B", 1)])], ORD)
    products = spark.createDataFrame(
        [
            ("A", "books", 10.0, True, D, "2026-09-01"),
            ("B", "books", 20.0, True, D, "2026-09-01"),
            ("C", "toys", 30.0, True, D, "2026-09-01"),
            ("D", "toys", 40.0, True, D, "2026-09-01"),
            ("D", "toys", 40.0, False, datetime(2026, 10, 5), "2026-10-05"),  # discontinued before the run date
        ],
        PROD,
    )
    return events, orders, products


def test_recommendations_follow_co_occurrence_and_exclude_bought_and_inactive(spark):
    from jobs.scoring.recommend import recommend

    events, orders, products = frames(spark)
    targets = spark.createDataFrame([("c1",), ("c3",), ("c4",)], "customer_id string")
    got = {
        r["customer_id"]: r["recommended_products"]
        for r in recommend(targets, events, orders, products, "2026-10-10", top_n=2, method="cooccurrence").collect()
    }
    # c1 (A, B): C co-occurs with both via c2 -> first; A and B are only viewed, not bought, so they stay
    # candidates; D is inactive and never recommended
    assert got["c1"][0] == "C" and "D" not in got["c1"] and len(got["c1"]) == 2
    # c3 bought B: never recommended; A (its own view) and C (via A~C) remain
    assert "B" not in got["c3"] and set(got["c3"]) <= {"A", "C"} and len(got["c3"]) == 2
    # c4 has no history: the most popular active products (A, then B)
    assert got["c4"] == ["A", "B"]


def test_no_leakage_from_after_the_run_date(spark):
    from jobs.scoring.recommend import recommend

    targets = spark.createDataFrame([("c1",)], "customer_id string")
    base = recommend(targets, *frames(spark), "2026-10-10", top_n=3).collect()
    later = frames(spark, [("c1", datetime(2026, 10, 11), "view", "D"), ("c9", datetime(2026, 10, 12), "view", "C")])
    assert recommend(targets, *later, "2026-10-10", top_n=3).collect() == base


def test_each_item_keeps_only_its_nearest_neighbours(spark):
    """cos(A,B) = 0.63 > cos(A,C) = cos(A,D) = 0.5: with one neighbour, A leads only to B."""
    from jobs.scoring.recommend import recommend

    targets = spark.createDataFrame([("c3",)], "customer_id string")

    def top(neighbours: int) -> list[str]:
        rows = recommend(
            targets, *frames(spark), "2026-10-10", top_n=1, neighbours=neighbours, method="cooccurrence"
        ).collect()
        return rows[0]["recommended_products"]

    assert top(50) == ["C"]  # c3's history is A; C is A's best neighbour it has not bought (B is bought)
    assert top(1) == ["A"]  # A's only neighbour is B, which c3 bought: the popularity fallback answers


def shop(spark):
    """Books A 10, D 15, B 20, C 30 (price bands 1, 1, 2, 3); toys X, Y; misc M1-M3; D and M* discontinued.

    u1 views A, X and D (so A's co-occurrence neighbours are X and D); v views B; w views D three times.
    n1 bought A (1 product); n2 bought A and M1-M3 (4 products). z has no history.
    """
    events = spark.createDataFrame(
        [
            ("u1", D, "view", "A"),
            ("u1", D, "view", "X"),
            ("u1", D, "view", "D"),
            ("v", D, "view", "B"),
            *[("w", D, "view", "D")] * 3,
            ("n1", D, "purchase", "A"),
            *[("n2", D, "purchase", p) for p in ("A", "M1", "M2", "M3")],
        ],
        EV,
    )
    orders = spark.createDataFrame([("n1", D, [("A", 1)]), ("n2", D, [(p, 1) for p in ("A", "M1", "M2", "M3")])], ORD)
    off = datetime(2026, 10, 5)
    rows = [("A", "books", 10.0), ("D", "books", 15.0), ("B", "books", 20.0), ("C", "books", 30.0)]
    rows += [("X", "toys", 10.0), ("Y", "toys", 20.0), ("M1", "misc", 10.0), ("M2", "misc", 20.0), ("M3", "misc", 30.0)]
    products = spark.createDataFrame(
        [(p, c, price, True, D, "2026-09-01") for p, c, price in rows]
        + [(p, c, price, False, off, "2026-10-05") for p, c, price in rows if p == "D" or p.startswith("M")],
        PROD,
    )
    return events, orders, products


def recs(spark, *, top_n: int, **kwargs) -> dict[str, list[str]]:
    from jobs.scoring.recommend import recommend

    targets = spark.createDataFrame([("n1",), ("n2",), ("z",)], "customer_id string")
    rows = recommend(targets, *shop(spark), "2026-10-10", top_n=top_n, **kwargs).collect()
    return {r["customer_id"]: r["recommended_products"] for r in rows}


def test_blend_weight_grows_with_the_history() -> None:
    from jobs.scoring.recommend import blend_weight

    assert [blend_weight(n, 5.0) for n in (0, 1, 5, 20)] == [0.0, 1 / 6, 0.5, 0.8]
    assert blend_weight(3, 0.0) == 1.0  # 0: co-occurrence only


def test_short_history_gets_content_similar_products_long_history_co_occurring_ones(spark):
    """Relative scores after the exclusions: co-occurrence X 1 (A's only active neighbour); content B = C = 1
    (books, the category of A and of nothing else bought: share 1; neither in A's price band 1).
    history_half 2: n1 (1 product) alpha 1/3 -> B, C 2/3 > X 1/3; n2 (4 products) alpha 2/3 -> X 2/3 > B, C 1/3.
    B before C by popularity (v's view; C was never touched: content reaches products without history)."""
    got = recs(spark, top_n=10, history_half=2.0)
    assert got["n1"] == ["B", "C", "X"]
    assert got["n2"] == ["X", "B", "C"]
    # no history: the most popular active products, A 11, then B and X 1 each by id (D, 4, is no longer sold)
    assert got["z"] == ["A", "B", "X"]
    # with a longer half-way point n2's 4 products weigh less than content too: alpha 1/6
    assert recs(spark, top_n=10, history_half=20.0)["n2"] == ["B", "C", "X"]


def test_bought_and_discontinued_products_are_never_recommended(spark):
    """D is popular (4, second to A), co-occurs with A and is a book like A, but is no longer sold; A and M* were
    bought. No method, at any list length, offers them to the buyers."""
    got = {method: recs(spark, top_n=10, method=method) for method in ("hybrid", "cooccurrence", "popularity")}
    for method, lists in got.items():
        assert not {"D", "M1", "M2", "M3"} & {p for r in lists.values() for p in r}, method
        assert "A" not in lists["n1"] and "A" not in lists["n2"], method
    # co-occurrence alone reaches only X (A's one active neighbour), then the popularity fill
    assert got["cooccurrence"]["n1"] == ["X", "B"]
    assert got["popularity"] == {"n1": ["B", "X"], "n2": ["B", "X"], "z": ["A", "B", "X"]}


def test_price_band_breaks_ties_within_the_category(spark):
    """Books at 10, 11 | 20, 21 | 30, 31 (price bands 1 | 2 | 3); q bought the 30 one. Content: b31 (same band)
    5 + 0.25 x 5 = 6.25, every other book 5 (relative 1 and 0.8); no co-occurrence (nobody shares a product with q).
    With the band weight b31 leads; without it every book ties and popularity decides (b10, viewed 3 times)."""
    from jobs.scoring.recommend import recommend

    prices = {"b10": 10.0, "b11": 11.0, "b20": 20.0, "b21": 21.0, "b30": 30.0, "b31": 31.0}
    events = spark.createDataFrame([("q", D, "purchase", "b30"), *[("r", D, "view", "b10")] * 3], EV)
    orders = spark.createDataFrame([("q", D, [("b30", 1)])], ORD)
    products = spark.createDataFrame([(p, "books", v, True, D, "2026-09-01") for p, v in prices.items()], PROD)
    targets = spark.createDataFrame([("q",)], "customer_id string")

    def top(weight: float) -> list[str]:
        rows = recommend(targets, events, orders, products, "2026-10-10", top_n=2, price_band_weight=weight).collect()
        return rows[0]["recommended_products"]

    assert top(0.25) == ["b31", "b10"]
    assert top(0.0) == ["b10", "b11"]
