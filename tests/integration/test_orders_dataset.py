"""An order history alone through the product's commands: import, train (MLflow), score and evaluate (warehouse).

The history is drawn from a buy-till-you-die process (each customer orders at their own rate until
they silently leave), so who orders again is predictable from recency and frequency: the trained
propensity must rank the held-out repeaters well, and the targeting must contact the customers the
model expects to spend the most.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

pytestmark = pytest.mark.timeout(300)


def buy_till_you_die(customers: int, days: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01")
    rows = []
    for c in range(customers):
        rate = rng.gamma(0.8, 1 / 40)  # orders per day while active
        alive_until = rng.uniform(0, days * 1.6)
        basket = rng.lognormal(3.0, 0.4)
        t = rng.uniform(0, 120)
        n = 0
        while t < min(days, alive_until):
            n += 1
            for _line in range(rng.integers(1, 3)):
                rows.append(
                    {
                        "invoice": f"I{c:05d}-{n}",
                        "date": (start + pd.Timedelta(days=t)).strftime("%d.%m.%Y"),
                        "customer": f"K{c:05d}",
                        "qty": int(rng.integers(1, 4)),
                        "price": round(basket * rng.uniform(0.3, 0.7), 2),
                    }
                )
            t += rng.exponential(1 / max(rate, 1e-3))
    return pd.DataFrame(rows)


def test_an_order_history_is_imported_trained_scored_and_evaluated(msp_home: Path, tmp_path: Path) -> None:
    from jobs.cli import app

    lines = buy_till_you_die(customers=2500, days=420, seed=3)
    src = tmp_path / "lines.csv"
    lines.to_csv(src, index=False)
    mapping = tmp_path / "shop.yaml"
    mapping.write_text(
        yaml.safe_dump(
            {
                "kind": "orders",
                "dataset": "byo_shop",
                "customer_id": "customer",
                "order_id": "invoice",
                "order_date": "date",
                "date_format": "%d.%m.%Y",
                "price": "price",
                "quantity": "qty",
                "targeting": {"strategy": "email", "cost_per_contact": 0.2, "contact_share": 0.25, "horizon_days": 90},
            }
        ),
        encoding="utf-8",
    )
    runner = CliRunner()
    imported = runner.invoke(app, ["import", "orders", str(src), "--mapping", str(mapping)])
    assert imported.exit_code == 0, imported.output
    assert "absent (an order history has none; not needed): events, campaign_log" in imported.stdout

    trained = runner.invoke(app, ["train", "--dataset", "byo_shop", "--ds", "2026-12-01"])
    assert trained.exit_code == 0, trained.output
    result = json.loads(trained.stdout[trained.stdout.index("{") :])
    metrics = result["metrics"]
    print("orders-only held-out figures:", {k: round(v, 3) for k, v in metrics.items()})
    assert result["kind"] == "orders" and result["champion"] == result["version"] == "1"
    assert set(result["absent_tables"]) == {"events", "campaign_log", "customer_attributes", "products"}
    assert metrics["repeat_auc"] > 0.7  # recency and frequency tell who is still buying
    assert metrics["repeat_auc"] > metrics["repeat_auc_rfm"] - 0.02
    assert metrics["value_capture_at_20"] > 0.4  # a random 20 % would hold 0.2 of the next period's spend
    assert abs(metrics["predicted_repeat_rate"] - metrics["repeat_rate"]) < 0.05

    scored = runner.invoke(app, ["score", "--dataset", "byo_shop", "--ds", "2026-12-01"])
    assert scored.exit_code == 0, scored.output
    again = runner.invoke(app, ["score", "--dataset", "byo_shop", "--ds", "2026-12-01"])  # a rerun replaces
    assert again.exit_code == 0, again.output
    evaluated = runner.invoke(app, ["evaluate", "--dataset", "byo_shop", "--ds", "2026-12-01"])
    assert evaluated.exit_code == 0, evaluated.output

    with duckdb.connect(str(msp_home / "var" / "warehouse.duckdb"), read_only=True) as con:
        customers = lines["customer"].nunique()
        rows = con.execute(
            "SELECT count(*), count(DISTINCT customer_id), sum(targeted::INT), min(expected_value) FILTER "
            "(WHERE targeted) >= max(expected_value) FILTER (WHERE NOT targeted) "
            "FROM marketing.v_dataset_customer_value_latest"
        ).fetchone()
        assert rows == (customers, customers, customers // 4, True)
        mix = dict(con.execute("SELECT strategy, count(*) FROM marketing.dataset_assignments GROUP BY 1").fetchall())
        assert mix == {"email": customers // 4, "no_action": customers - customers // 4}
        auc = con.execute(
            "SELECT value FROM marketing.model_metrics WHERE source = 'dataset:byo_shop' AND metric = 'repeat_auc'"
        ).fetchone()
        assert auc is not None and auc[0] == pytest.approx(metrics["repeat_auc"])
