-- Closed loop: what the model would have chosen for every customer, the realised effects of the
-- strategies measured against the random holdout (marketing_evaluate), and population drift (marketing_score).

-- The optimiser's choice for every customer, also where the assignment is a holdout or exploration:
-- the holdout customers the model would have given strategy s are the control group of s.
ALTER TABLE {schema}.strategy_assignments ADD COLUMN IF NOT EXISTS model_strategy TEXT;

-- a.* is expanded when a view is created: recreate the view so it shows the new column.
CREATE OR REPLACE VIEW {schema}.v_latest_assignments AS
SELECT a.*
FROM {schema}.strategy_assignments AS a
WHERE a.run_date = (SELECT max(run_date) FROM {schema}.strategy_assignments);

-- One row per campaign run date, strategy and segment ('all' pools the segments), written once the
-- run's attribution window has closed; a re-evaluation of a run date replaces its rows.
CREATE TABLE IF NOT EXISTS {schema}.strategy_effects (
    run_date                                 DATE             NOT NULL,
    strategy                                 TEXT             NOT NULL,
    segment                                  TEXT             NOT NULL,
    customers                                BIGINT           NOT NULL,
    holdout_customers                        BIGINT           NOT NULL,
    conversion_rate                          DOUBLE PRECISION,
    holdout_conversion_rate                  DOUBLE PRECISION,
    click_through_rate                       DOUBLE PRECISION,
    revenue_per_customer                     DOUBLE PRECISION,
    holdout_revenue_per_customer             DOUBLE PRECISION,
    incremental_conversion_rate              DOUBLE PRECISION,
    incremental_conversion_rate_lo           DOUBLE PRECISION,
    incremental_conversion_rate_hi           DOUBLE PRECISION,
    incremental_conversion_rate_p_value      DOUBLE PRECISION,
    incremental_revenue_per_customer         DOUBLE PRECISION,
    incremental_revenue_per_customer_lo      DOUBLE PRECISION,
    incremental_revenue_per_customer_hi      DOUBLE PRECISION,
    incremental_revenue_per_customer_p_value DOUBLE PRECISION,
    incremental_conversions                  DOUBLE PRECISION,
    incremental_conversions_lo               DOUBLE PRECISION,
    incremental_conversions_hi               DOUBLE PRECISION,
    incremental_revenue                      DOUBLE PRECISION,
    incremental_revenue_lo                   DOUBLE PRECISION,
    incremental_revenue_hi                   DOUBLE PRECISION,
    cost                                     DOUBLE PRECISION,
    incremental_profit                       DOUBLE PRECISION,
    roi                                      DOUBLE PRECISION,
    predicted_incremental_conversions        DOUBLE PRECISION,
    predicted_incremental_revenue            DOUBLE PRECISION,
    predicted_incremental_profit             DOUBLE PRECISION,
    prediction_inside_interval               BOOLEAN,
    model_name                               TEXT             NOT NULL,
    model_version                            TEXT             NOT NULL,
    evaluated_at                             TIMESTAMP        NOT NULL,
    PRIMARY KEY (run_date, strategy, segment)
);

-- BI: realised against predicted, per run and strategy, over all segments.
CREATE OR REPLACE VIEW {schema}.v_strategy_effects AS
SELECT
    run_date,
    strategy,
    customers,
    holdout_customers,
    conversion_rate,
    holdout_conversion_rate,
    click_through_rate,
    incremental_conversions,
    incremental_conversions_lo,
    incremental_conversions_hi,
    incremental_conversion_rate_p_value,
    predicted_incremental_conversions,
    prediction_inside_interval,
    incremental_revenue,
    predicted_incremental_revenue,
    cost,
    incremental_profit,
    roi,
    model_name,
    model_version
FROM {schema}.strategy_effects
WHERE segment = 'all';

-- Population drift of a scoring run against the champion's training date: one row per column.
CREATE TABLE IF NOT EXISTS {schema}.feature_drift (
    run_date          DATE             NOT NULL,
    column_name       TEXT             NOT NULL,
    kind              TEXT             NOT NULL,
    psi               DOUBLE PRECISION NOT NULL,
    level             TEXT             NOT NULL CHECK (level IN ('ok', 'warn', 'alert')),
    reference_rows    BIGINT           NOT NULL,
    current_rows      BIGINT           NOT NULL,
    reference_missing DOUBLE PRECISION,
    current_missing   DOUBLE PRECISION,
    reference_date    DATE             NOT NULL,
    model_name        TEXT             NOT NULL,
    model_version     TEXT             NOT NULL,
    checked_at        TIMESTAMP        NOT NULL,
    PRIMARY KEY (run_date, column_name)
);
