-- Imported data sets (msp import campaign-log, then msp train/score/evaluate --dataset; docs/DATASETS.md):
-- the assignments and the forecast of each data set's scoring run, beside the shop's own tables.

-- One row per data set, run date and customer; a rerun of (dataset, run_date) replaces its rows.
CREATE TABLE IF NOT EXISTS {schema}.dataset_assignments (
    dataset                          TEXT             NOT NULL,
    run_date                         DATE             NOT NULL,
    customer_id                      TEXT             NOT NULL,
    strategy                         TEXT             NOT NULL,
    p_convert_chosen                 DOUBLE PRECISION,
    p_convert_control                DOUBLE PRECISION,
    expected_incremental_value       DOUBLE PRECISION,
    expected_cost                    DOUBLE PRECISION,
    expected_incremental_profit      DOUBLE PRECISION,
    model_name                       TEXT             NOT NULL,
    model_version                    TEXT             NOT NULL,
    scored_at                        TIMESTAMP        NOT NULL,
    PRIMARY KEY (dataset, run_date, customer_id)
);

-- One row per data set, run date and strategy: what the run expects the assignments to earn.
CREATE TABLE IF NOT EXISTS {schema}.dataset_forecast (
    dataset                          TEXT             NOT NULL,
    run_date                         DATE             NOT NULL,
    strategy                         TEXT             NOT NULL,
    customers                        BIGINT           NOT NULL,
    expected_incremental_conversions DOUBLE PRECISION,
    expected_incremental_value       DOUBLE PRECISION,
    expected_cost                    DOUBLE PRECISION,
    expected_incremental_profit      DOUBLE PRECISION,
    model_name                       TEXT             NOT NULL,
    model_version                    TEXT             NOT NULL,
    created_at                       TIMESTAMP        NOT NULL,
    PRIMARY KEY (dataset, run_date, strategy)
);

-- BI: each data set's latest scoring run.
CREATE OR REPLACE VIEW {schema}.v_dataset_latest_assignments AS
SELECT a.*
FROM {schema}.dataset_assignments AS a
WHERE a.run_date = (SELECT max(b.run_date) FROM {schema}.dataset_assignments AS b WHERE b.dataset = a.dataset);
