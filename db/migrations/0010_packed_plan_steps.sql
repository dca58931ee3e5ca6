-- 0010: plan steps in a compact stored form (issue 16). A plan version's steps are written as `steps_packed`, the binary
-- form of Forecaster.Api.Plans.PackedSteps (about 2 KB for 48 steps with their explanations, instead of about 40 KB of
-- jsonb), with binary COPY; `counts` keeps the planned count per step visible to SQL. Versions stored before this keep
-- their JSON `steps` (read as before), so `steps` becomes optional: every row has one form or the other. Applied once by
-- the migration runner inside a transaction; guarded with IF NOT EXISTS, so a hand re-run is harmless.
ALTER TABLE plan_versions ADD COLUMN IF NOT EXISTS steps_packed bytea;
ALTER TABLE plan_versions ADD COLUMN IF NOT EXISTS counts integer[];
ALTER TABLE plan_versions ALTER COLUMN steps DROP NOT NULL;
-- Doubles do not compress: storing the packed steps uncompressed saves the pglz attempt on every write and read.
ALTER TABLE plan_versions ALTER COLUMN steps_packed SET STORAGE EXTERNAL;
ALTER TABLE plan_versions DROP CONSTRAINT IF EXISTS plan_versions_steps_stored;
ALTER TABLE plan_versions ADD CONSTRAINT plan_versions_steps_stored CHECK (steps IS NOT NULL OR steps_packed IS NOT NULL);
