-- Reasons per assignment (docs/SCORING.md): for model-chosen assignments other than the control, the
-- three features that most raise or lower the chosen strategy's predicted conversion uplift over
-- no_action (TreeSHAP contributions of the XGBoost conversion model, in probability points).
-- reasons is JSON text: a list of objects with keys feature, value and contribution, largest first;
-- reason_1 .. reason_3 say the same in plain words ("recency_days 3: +0.80 pp"), so no engine needs
-- to parse JSON. Held-out, explored and no_action rows, and Keras champions, have nulls.
ALTER TABLE {schema}.strategy_assignments ADD COLUMN IF NOT EXISTS reasons TEXT;
ALTER TABLE {schema}.strategy_assignments ADD COLUMN IF NOT EXISTS reason_1 TEXT;
ALTER TABLE {schema}.strategy_assignments ADD COLUMN IF NOT EXISTS reason_2 TEXT;
ALTER TABLE {schema}.strategy_assignments ADD COLUMN IF NOT EXISTS reason_3 TEXT;

-- a.* is expanded when a view is created: recreate the view so it shows the new columns.
CREATE OR REPLACE VIEW {schema}.v_latest_assignments AS
SELECT a.*
FROM {schema}.strategy_assignments AS a
WHERE a.run_date = (SELECT max(run_date) FROM {schema}.strategy_assignments);

-- BI: why the model chose each customer's strategy, one row per model-chosen assignment with reasons.
CREATE OR REPLACE VIEW {schema}.v_assignment_reasons AS
SELECT
    run_date,
    customer_id,
    strategy,
    segment,
    expected_incremental_profit,
    reason_1,
    reason_2,
    reason_3,
    reasons,
    model_name,
    model_version
FROM {schema}.strategy_assignments
WHERE reasons IS NOT NULL;
