-- Data-quality results: one row per expectation and run of the ingestion pipeline.
CREATE TABLE IF NOT EXISTS {schema}.data_quality (
    run_date         DATE        NOT NULL,
    table_name       TEXT        NOT NULL,
    expectation      TEXT        NOT NULL,
    column_name      TEXT,
    severity         TEXT        NOT NULL,
    success          BOOLEAN     NOT NULL,
    unexpected_count BIGINT      NOT NULL,
    element_count    BIGINT      NOT NULL,
    checked_at       TIMESTAMP   NOT NULL
);
