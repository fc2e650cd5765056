-- Batch scoring: per-customer strategy assignments, per-segment campaign forecasts, model metrics,
-- and the BI views over them. Types are portable: the same text runs on DuckDB and PostgreSQL.

-- One row per customer and scoring run; a rerun of a run_date replaces its rows (Warehouse.replace).
CREATE TABLE IF NOT EXISTS {schema}.strategy_assignments (
    run_date                     DATE             NOT NULL,
    customer_id                  TEXT             NOT NULL,
    strategy                     TEXT             NOT NULL,
    reason                       TEXT             NOT NULL CHECK (reason IN ('model', 'explore', 'holdout')),
    propensity                   DOUBLE PRECISION NOT NULL CHECK (propensity > 0 AND propensity <= 1),
    p_convert_chosen             DOUBLE PRECISION,
    p_convert_control            DOUBLE PRECISION,
    expected_revenue             DOUBLE PRECISION,
    expected_incremental_revenue DOUBLE PRECISION,
    expected_cost                DOUBLE PRECISION,
    expected_profit              DOUBLE PRECISION,
    expected_incremental_profit  DOUBLE PRECISION,
    recommended_products         TEXT,
    segment                      TEXT,
    model_name                   TEXT             NOT NULL,
    model_version                TEXT             NOT NULL,
    scored_at                    TIMESTAMP        NOT NULL,
    PRIMARY KEY (run_date, customer_id)
);

-- One row per run, strategy and segment: expected outcomes with interval bounds.
CREATE TABLE IF NOT EXISTS {schema}.campaign_forecast (
    run_date                         DATE             NOT NULL,
    strategy                         TEXT             NOT NULL,
    segment                          TEXT             NOT NULL,
    customers                        BIGINT           NOT NULL,
    expected_conversions             DOUBLE PRECISION,
    expected_incremental_conversions DOUBLE PRECISION,
    expected_incremental_conversions_lo DOUBLE PRECISION,
    expected_incremental_conversions_hi DOUBLE PRECISION,
    expected_revenue                 DOUBLE PRECISION,
    expected_incremental_revenue     DOUBLE PRECISION,
    expected_incremental_revenue_lo  DOUBLE PRECISION,
    expected_incremental_revenue_hi  DOUBLE PRECISION,
    expected_cost                    DOUBLE PRECISION,
    expected_profit                  DOUBLE PRECISION,
    roi                              DOUBLE PRECISION,
    roi_lo                           DOUBLE PRECISION,
    roi_hi                           DOUBLE PRECISION,
    model_name                       TEXT             NOT NULL,
    model_version                    TEXT             NOT NULL,
    created_at                       TIMESTAMP        NOT NULL,
    PRIMARY KEY (run_date, strategy, segment)
);

-- Model metrics per run; segment 'all' (the default) is the whole population, so the key has no NULLs.
CREATE TABLE IF NOT EXISTS {schema}.model_metrics (
    run_date      DATE             NOT NULL,
    model_name    TEXT             NOT NULL,
    model_version TEXT             NOT NULL,
    metric        TEXT             NOT NULL,
    value         DOUBLE PRECISION,
    segment       TEXT             NOT NULL DEFAULT 'all',
    source        TEXT,
    recorded_at   TIMESTAMP        NOT NULL,
    PRIMARY KEY (run_date, model_name, model_version, metric, segment)
);

-- BI: the assignments of the latest scoring run.
CREATE OR REPLACE VIEW {schema}.v_latest_assignments AS
SELECT a.*
FROM {schema}.strategy_assignments AS a
WHERE a.run_date = (SELECT max(run_date) FROM {schema}.strategy_assignments);

-- BI: one row per run and strategy.
CREATE OR REPLACE VIEW {schema}.v_strategy_summary AS
SELECT
    run_date,
    strategy,
    count(*) AS customers,
    CAST(count(*) AS DOUBLE PRECISION) / CAST(sum(count(*)) OVER (PARTITION BY run_date) AS DOUBLE PRECISION) AS share,
    avg(propensity) AS mean_propensity,
    sum(expected_revenue) AS expected_revenue,
    sum(expected_cost) AS expected_cost,
    sum(expected_profit) AS expected_profit,
    sum(expected_incremental_profit) AS expected_incremental_profit,
    count(*) FILTER (WHERE reason = 'model') AS model_customers,
    count(*) FILTER (WHERE reason = 'explore') AS explore_customers,
    count(*) FILTER (WHERE reason = 'holdout') AS holdout_customers
FROM {schema}.strategy_assignments
GROUP BY run_date, strategy;
