"""clean_frame on tiny inline bronze frames: exact silver rows and exact quarantine reasons."""

from __future__ import annotations

import hashlib

import pytest

from jobs.contracts import SOURCES
from jobs.pipeline.clean import clean_frame
from jobs.pipeline.ingest import raw_schema

SALT = "pepper"
DS = "2026-09-08"


def bronze(spark, table: str, rows: list[dict], ds: str = DS):
    """Bronze rows as ingestion writes them: raw strings, corrupt record, load metadata."""
    from pyspark.sql import functions as F

    source = SOURCES[table]
    schema = raw_schema(source)
    full = [{**{f.name: None for f in schema.fields}, **r} for r in rows]
    df = spark.createDataFrame(full, schema)
    return (
        df.withColumn("_source_file", F.lit(f"file:/landing/{table}/ds={ds}/part-00000"))
        .withColumn("_ingested_at", F.lit("2026-09-09 01:00:00").cast("timestamp"))
        .withColumn("_row_hash", F.sha2(F.to_json(F.struct(*[F.col(c) for c in df.columns])), 256))
        .withColumn("ds", F.lit(ds))
    )


def dim(spark, keys: dict[str, str]):
    return spark.createDataFrame([{"key": k, "first_ds": d} for k, d in keys.items()], "key string, first_ds string")


def reasons(quarantine) -> dict[str, str]:
    return {r["raw"] if r["key"] is None else r["key"]: r["reason"] for r in quarantine.collect()}


def test_events_are_typed_validated_and_deduplicated(spark) -> None:
    rows = [
        {
            "event_id": "E1",
            "customer_id": "C1",
            "ts": "2026-09-08T10:00:00.000Z",
            "event_type": "view",
            "product_id": "P1",
            "session_id": "S1",
        },
        # near duplicate of E1: same instant written differently, type in capitals
        {
            "event_id": "E1",
            "customer_id": "C1",
            "ts": "2026-09-08 10:00:00.000+00:00",
            "event_type": " VIEW",
            "product_id": "P1",
            "session_id": "S1",
        },
        {"event_id": "E2", "customer_id": "C1", "ts": "not-a-timestamp", "event_type": "view"},
        {"event_id": "E3", "customer_id": "C1", "ts": "2026-09-08T11:00:00Z", "event_type": "teleport"},
        {"event_id": "E4", "customer_id": "C1", "ts": "2027-01-01T00:00:00Z", "event_type": "view"},
        {"event_id": "E5", "customer_id": "C9", "ts": "2026-09-08T11:00:00Z", "event_type": "search"},
        {"event_id": "E6", "customer_id": "C2", "ts": "2026-09-08T11:00:00Z", "event_type": "search"},
        {
            "event_id": "E7",
            "customer_id": "C1",
            "ts": "2026-09-08T12:00:00Z",
            "event_type": "view",
            "product_id": "P9",
        },
        {"event_id": None, "customer_id": "C1", "ts": "2026-09-08T12:00:00Z", "event_type": "view"},
        {"_corrupt_record": "#### export interrupted ####"},
        {"event_id": "E8", "customer_id": "C1", "ts": "2026-09-08T13:00:00Z", "event_type": "email_open"},
    ]
    dims = {
        "customers": dim(spark, {"C1": "2026-09-01", "C2": "2026-09-10"}),  # C2 only signs up later
        "products": dim(spark, {"P1": "2026-09-01"}),
    }
    silver, quarantine = clean_frame(bronze(spark, "events", rows), SOURCES["events"], dims, SALT)
    got = {r["event_id"]: r for r in silver.collect()}
    assert sorted(got) == ["E1", "E8"]
    e1 = got["E1"]
    assert (e1["event_type"], e1["customer_id"], e1["product_id"]) == ("view", "C1", "P1")
    assert e1["ts"].isoformat() == "2026-09-08T10:00:00"
    assert e1["ds"] == DS and e1["_missing"] == []
    assert reasons(quarantine) == {
        "E1": "duplicate_key",
        "E2": "wrong_type:ts",
        "E3": "invalid_value:event_type",
        "E4": "future_timestamp:ts",
        "E5": "unknown_fk:customer_id",
        "E6": "unknown_fk:customer_id",  # point in time: C2 is not known on 2026-09-08
        "E7": "unknown_fk:product_id",
        "": "null_required:event_id",
        "#### export interrupted ####": "malformed_record",
    }


def test_customers_hash_pii_impute_and_keep_the_latest_version(spark) -> None:
    base = {
        "customer_id": "C1",
        "first_name": "Ida",
        "last_name": "Graf",
        "email": "Ida.G@Example.com",
        "phone": "+49 151 1234567",
        "signup_date": "2025-01-02",
        "region": "north",
        "channel": "web",
        "birth_year": "1990",
        "gender": "f",
        "updated_at": "2025-01-02T10:00:00Z",
    }
    rows = [
        base,
        {**base, "region": "south", "updated_at": "2026-09-08T09:00:00Z"},  # a later version wins
        {**base, "customer_id": "C2", "region": None, "gender": None, "birth_year": None},
        {**base, "customer_id": "C3", "birth_year": "1850"},
        {**base, "customer_id": "C4", "birth_year": "19x5"},
        {**base, "customer_id": "C5", "signup_date": "2031-01-01"},
        {"_corrupt_record": "C6,Ann,Lee,ann@example.com,+49 151 7654321"},
    ]
    silver, quarantine = clean_frame(bronze(spark, "customers", rows), SOURCES["customers"], {}, SALT)
    got = {r["customer_id"]: r.asDict() for r in silver.collect()}
    assert sorted(got) == ["C1", "C2"]
    assert got["C1"]["region"] == "south"
    expected_email = hashlib.sha256((SALT + "ida.g@example.com").encode()).hexdigest()
    assert got["C1"]["email_hash"] == expected_email
    assert got["C1"]["phone_hash"] == hashlib.sha256((SALT + "+491511234567").encode()).hexdigest()
    assert not {"email", "phone", "first_name", "last_name"} & set(got["C1"])
    assert (got["C2"]["region"], got["C2"]["gender"], got["C2"]["birth_year"]) == ("unknown", "unknown", None)
    assert sorted(got["C2"]["_missing"]) == ["birth_year", "gender", "region"]
    q = quarantine.collect()
    by_reason = {r["reason"]: r for r in q}
    assert set(by_reason) == {
        "duplicate_key",
        "out_of_range:birth_year",
        "wrong_type:birth_year",
        "future_timestamp:signup_date",
        "malformed_record",
    }
    # quarantine keeps no raw PII: no e-mail, no phone, no names
    for r in q:
        assert "@" not in r["raw"] and "151" not in r["raw"] and "Ida" not in r["raw"], r["raw"]
    assert by_reason["malformed_record"]["raw"].startswith("redacted malformed line sha256=")


def test_orders_check_item_keys_types_and_impute_discount(spark) -> None:
    item = [{"product_id": "P1", "qty": "1", "price": "10.5"}]
    base = {
        "order_id": "O1",
        "customer_id": "C1",
        "ts": "2026-09-08T12:00:00+02:00",
        "amount": "10.5",
        "discount": "1.05",
        "currency": "EUR",
        "items": item,
    }
    rows = [
        base,
        {**base, "order_id": "O2", "discount": None, "currency": None},
        {**base, "order_id": "O3", "amount": "12,5O"},
        {**base, "order_id": "O4", "amount": "-3.0"},
        {**base, "order_id": "O5", "items": [{"product_id": "P9", "qty": "1", "price": "1.0"}]},
        {**base, "order_id": "O6", "items": [{"product_id": "P1", "qty": "two", "price": "1.0"}]},
    ]
    dims = {"customers": dim(spark, {"C1": "2026-09-01"}), "products": dim(spark, {"P1": "2026-09-01"})}
    silver, quarantine = clean_frame(bronze(spark, "orders", rows), SOURCES["orders"], dims, SALT)
    got = {r["order_id"]: r for r in silver.collect()}
    assert sorted(got) == ["O1", "O2"]
    assert got["O1"]["ts"].isoformat() == "2026-09-08T10:00:00"  # local time with offset -> UTC
    assert (got["O1"]["amount"], got["O1"]["discount"]) == (10.5, 1.05)
    assert got["O1"]["items"][0].asDict() == {"product_id": "P1", "qty": 1, "price": 10.5}
    assert (got["O2"]["discount"], got["O2"]["currency"]) == (0.0, "EUR")
    assert sorted(got["O2"]["_missing"]) == ["currency", "discount"]
    assert reasons(quarantine) == {
        "O3": "wrong_type:amount",
        "O4": "out_of_range:amount",
        "O5": "unknown_fk:items.product_id",
        "O6": "wrong_type:items.qty",
    }


def test_campaign_log_keeps_the_outcome_version_and_checks_propensity(spark) -> None:
    from pyspark.sql import functions as F

    rows = [
        (
            "CMP-1",
            "C1",
            "2026-09-01 09:00:00",
            "coupon_10",
            0.2,
            False,
            None,
            None,
            None,
            "2026-09-01 09:00:00",
        ),
        (
            "CMP-1",
            "C1",
            "2026-09-01 09:00:00",
            " COUPON_10",
            0.2,
            False,
            True,
            True,
            30.0,
            "2026-09-08 02:00:00",
        ),
        (
            "CMP-1",
            "C2",
            "2026-09-01 09:00:00",
            "no_action",
            0.0,
            True,
            None,
            None,
            None,
            "2026-09-01 09:00:00",
        ),
        (
            "CMP-1",
            "C3",
            "2026-09-01 09:00:00",
            "coupon_50",
            0.2,
            False,
            None,
            None,
            None,
            "2026-09-01 09:00:00",
        ),
        (
            "CMP-1",
            "C4",
            "2026-09-01 09:00:00",
            " No_Action",  # normalised before the holdout flag is imputed
            0.4,
            None,
            False,
            False,
            0.0,
            "2026-09-08 02:00:00",
        ),
    ]
    cols = (
        "campaign_id string, customer_id string, ts string, strategy string, propensity double, "
        "is_holdout boolean, visited boolean, converted boolean, revenue double, updated_at string"
    )
    df = spark.createDataFrame(rows, cols)
    df = (
        df.withColumn("ts", F.col("ts").cast("timestamp"))
        .withColumn("updated_at", F.col("updated_at").cast("timestamp"))
        .withColumn("_corrupt_record", F.lit(None).cast("string"))
        .withColumn("_source_file", F.lit("file:/x"))
        .withColumn("_ingested_at", F.current_timestamp())
        .withColumn("_row_hash", F.sha2(F.concat_ws("|", "customer_id", "strategy", "updated_at"), 256))
        .withColumn("ds", F.lit(DS))
    )
    dims = {"customers": dim(spark, {f"C{i}": "2026-09-01" for i in range(1, 5)})}
    silver, quarantine = clean_frame(df, SOURCES["campaign_log"], dims, SALT)
    got = {r["customer_id"]: r for r in silver.collect()}
    assert sorted(got) == ["C1", "C4"]
    assert (got["C1"]["strategy"], got["C1"]["converted"], got["C1"]["revenue"]) == ("coupon_10", True, 30.0)
    assert got["C4"]["is_holdout"] is True and got["C4"]["_missing"] == ["is_holdout"]
    assert reasons(quarantine) == {
        "CMP-1|C1": "duplicate_key",
        "CMP-1|C2": "out_of_range:propensity",
        "CMP-1|C3": "invalid_value:strategy",
    }


def test_products_impute_margin_by_category_median_and_flag_outliers(spark) -> None:
    rows = [
        {
            "product_id": f"P{i}",
            "name": f"n{i}",
            "category": "books",
            "price": str(p),
            "margin_rate": str(m),
            "is_active": "true",
            "updated_at": "2026-08-01T00:00:00Z",
        }
        for i, (p, m) in enumerate([(10, 0.2), (12, 0.3), (11, 0.4), (9, 0.5), (500, 0.1)], 1)
    ] + [
        {
            "product_id": "P6",
            "name": None,
            "category": "Books ",
            "price": "10",
            "margin_rate": None,
            "is_active": "true",
            "updated_at": "2026-08-01T00:00:00Z",
        },
        {"product_id": "P7", "name": "x", "category": "books", "price": "-1", "margin_rate": "0.2"},
        {"product_id": "P8", "name": "x", "category": "books", "price": "1", "margin_rate": "1.7"},
    ]
    silver, quarantine = clean_frame(bronze(spark, "products", rows), SOURCES["products"], {}, SALT)
    got = {r["product_id"]: r for r in silver.collect()}
    assert got["P6"]["margin_rate"] == pytest.approx(0.3)  # median of books: 0.1 0.2 0.3 0.4 0.5
    assert (got["P6"]["name"], got["P6"]["category"]) == ("P6", "books")
    assert [p for p, r in sorted(got.items()) if r["price_outlier"]] == ["P5"]
    assert reasons(quarantine) == {"P7": "out_of_range:price", "P8": "out_of_range:margin_rate"}
