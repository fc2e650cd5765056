-- The nightly sales forecast (marketing_forecast, msp forecast sales; docs/FORECAST.md): daily orders and
-- revenue per product category for the next 28 days, with a central prediction interval.

-- One row per forecast origin (run_date), category, metric and target day; a rerun of run_date replaces
-- its rows. category 'all' is the shop's total (every order once); metric 'orders' or 'revenue' (net of
-- discounts, in the shop's currency). lower / upper bound the central interval of level interval_level
-- (0.8: the day's value falls inside 80% of the time if the model is right).
CREATE TABLE IF NOT EXISTS {schema}.sales_forecast (
    run_date                         DATE             NOT NULL,
    target_date                      DATE             NOT NULL,
    horizon                          INTEGER          NOT NULL CHECK (horizon >= 1),
    category                         TEXT             NOT NULL,
    metric                           TEXT             NOT NULL CHECK (metric IN ('orders', 'revenue')),
    forecast                         DOUBLE PRECISION NOT NULL,
    lower                            DOUBLE PRECISION NOT NULL,
    upper                            DOUBLE PRECISION NOT NULL,
    interval_level                   DOUBLE PRECISION NOT NULL CHECK (interval_level > 0 AND interval_level < 1),
    model_name                       TEXT             NOT NULL,
    history_days                     INTEGER          NOT NULL,
    created_at                       TIMESTAMP        NOT NULL,
    PRIMARY KEY (run_date, category, metric, target_date)
);

-- BI: the latest forecast, one row per category and target day, orders and revenue side by side.
CREATE OR REPLACE VIEW {schema}.v_sales_forecast_latest AS
SELECT
    o.run_date,
    o.target_date,
    o.horizon,
    o.category,
    o.forecast AS orders,
    o.lower AS orders_lower,
    o.upper AS orders_upper,
    r.forecast AS revenue,
    r.lower AS revenue_lower,
    r.upper AS revenue_upper,
    o.interval_level,
    o.model_name AS orders_model,
    r.model_name AS revenue_model,
    o.created_at
FROM {schema}.sales_forecast AS o
JOIN {schema}.sales_forecast AS r
    ON r.run_date = o.run_date AND r.category = o.category AND r.target_date = o.target_date AND r.metric = 'revenue'
WHERE o.metric = 'orders'
    AND o.run_date = (SELECT max(run_date) FROM {schema}.sales_forecast);

-- BI: what share of the shop's forecast revenue of the next 7 days (the default attribution window, target
-- days run_date .. run_date + 6) each strategy's assignments of the same run date are expected to add
-- (campaign_forecast's incremental revenue summed over segments). Needs both runs of the date.
CREATE OR REPLACE VIEW {schema}.v_campaign_revenue_share AS
SELECT
    c.run_date,
    c.strategy,
    sum(c.customers) AS customers,
    sum(c.expected_incremental_revenue) AS expected_incremental_revenue,
    max(s.forecast_revenue_7d) AS forecast_revenue_7d,
    sum(c.expected_incremental_revenue) / NULLIF(max(s.forecast_revenue_7d), 0) AS share_of_forecast_revenue
FROM {schema}.campaign_forecast AS c
JOIN (
    SELECT run_date, sum(forecast) AS forecast_revenue_7d
    FROM {schema}.sales_forecast
    WHERE category = 'all' AND metric = 'revenue' AND horizon <= 7
    GROUP BY run_date
) AS s ON s.run_date = c.run_date
GROUP BY c.run_date, c.strategy;
