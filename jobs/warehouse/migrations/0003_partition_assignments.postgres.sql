-- PostgreSQL only (DuckDB records this version without running it): strategy_assignments becomes a
-- table partitioned by run_date, one partition per run. Warehouse.replace then loads a run into a
-- fresh table with COPY and swaps it in as that date's partition, so a million-row night costs
-- COPY + one index build instead of DELETE + INSERT ... SELECT of every row. Rows written before
-- this migration move to the DEFAULT partition; a rerun of such a date deletes them there.

ALTER TABLE {schema}.strategy_assignments RENAME TO strategy_assignments_0002;
ALTER TABLE {schema}.strategy_assignments_0002 RENAME CONSTRAINT strategy_assignments_pkey TO strategy_assignments_0002_pkey;

CREATE TABLE {schema}.strategy_assignments (
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
) PARTITION BY LIST (run_date);

CREATE TABLE {schema}.strategy_assignments_default PARTITION OF {schema}.strategy_assignments DEFAULT;

INSERT INTO {schema}.strategy_assignments SELECT * FROM {schema}.strategy_assignments_0002;

CREATE OR REPLACE VIEW {schema}.v_latest_assignments AS
SELECT a.*
FROM {schema}.strategy_assignments AS a
WHERE a.run_date = (SELECT max(run_date) FROM {schema}.strategy_assignments);

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

DROP TABLE {schema}.strategy_assignments_0002;
