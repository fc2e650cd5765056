-- An imported order history (msp import orders; docs/DATASETS.md): each scoring run's customers with
-- their RFM figures, the repeat-purchase propensity and expected spend over the horizon, and whether
-- the value-based targeting contacts them. A rerun of (dataset, run_date) replaces its rows.
CREATE TABLE IF NOT EXISTS {schema}.dataset_customer_value (
    dataset          TEXT             NOT NULL,
    run_date         DATE             NOT NULL,
    customer_id      TEXT             NOT NULL,
    as_of            DATE             NOT NULL,
    horizon_days     INTEGER          NOT NULL,
    p_repeat         DOUBLE PRECISION NOT NULL,
    expected_value   DOUBLE PRECISION NOT NULL,
    rfm_score        DOUBLE PRECISION NOT NULL,
    recency_days     DOUBLE PRECISION NOT NULL,
    frequency        DOUBLE PRECISION NOT NULL,
    monetary         DOUBLE PRECISION NOT NULL,
    targeted         BOOLEAN          NOT NULL,
    model_name       TEXT             NOT NULL,
    model_version    TEXT             NOT NULL,
    scored_at        TIMESTAMP        NOT NULL,
    PRIMARY KEY (dataset, run_date, customer_id)
);

-- BI: each order-history data set's latest scoring run.
CREATE OR REPLACE VIEW {schema}.v_dataset_customer_value_latest AS
SELECT v.*
FROM {schema}.dataset_customer_value AS v
WHERE v.run_date = (SELECT max(w.run_date) FROM {schema}.dataset_customer_value AS w WHERE w.dataset = v.dataset);
