-- The predicted interval of each strategy's incremental conversions (prediction ± z · the standard
-- error the realised estimate would have if the model were right, plus the model's held-out error),
-- and whether the realised effect lies inside it (marketing_evaluate's coverage figure).
ALTER TABLE {schema}.strategy_effects ADD COLUMN IF NOT EXISTS predicted_incremental_conversions_lo DOUBLE PRECISION;
ALTER TABLE {schema}.strategy_effects ADD COLUMN IF NOT EXISTS predicted_incremental_conversions_hi DOUBLE PRECISION;
ALTER TABLE {schema}.strategy_effects ADD COLUMN IF NOT EXISTS realised_inside_predicted_interval BOOLEAN;

-- PostgreSQL lets a replaced view add columns only at the end.
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
    model_version,
    predicted_incremental_conversions_lo,
    predicted_incremental_conversions_hi,
    realised_inside_predicted_interval
FROM {schema}.strategy_effects
WHERE segment = 'all';
