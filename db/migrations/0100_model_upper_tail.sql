-- 0100: each model version's one-sided upper backtest errors (issue 15), which a policy that states its risk plans on:
-- {"origin", "stepScale", "levels", "quantiles", "samples"} (the planner's UpperTail; quantiles in units of each forecast
-- hour's own band margin, step 0 at the origin). Kept with the model version, not in the forecasts table: one small object
-- per series, read with the version the forecasts already join. Null when training had too few backtest errors (the planner
-- then extrapolates the band with normal quantiles, as before).
ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS upper_tail jsonb;
