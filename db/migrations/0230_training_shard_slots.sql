-- 0230: a run's shards as ranges of slots (issue 16). Each resource has one of the run's shard_slots slots (its id times the
-- golden ratio, fractional part: TrainingRuns.SlotOf) and shard s holds those in [slot_from, slot_to), so that shards can
-- differ in size: they shrink towards the end of a run, and the last one to finish leaves the other instances little idle
-- time (TrainingRuns.Layout). Finished runs get one slot per shard, as they had; a run still running across the upgrade
-- deals its remaining shards by the new slots, so some of its resources may keep their previous model until the next run.
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS shard_slots integer NOT NULL DEFAULT 0;
UPDATE training_runs SET shard_slots = shard_count WHERE shard_slots = 0;

ALTER TABLE training_shards ADD COLUMN IF NOT EXISTS slot_from integer, ADD COLUMN IF NOT EXISTS slot_to integer;
UPDATE training_shards SET slot_from = shard, slot_to = shard + 1 WHERE slot_from IS NULL;
ALTER TABLE training_shards ALTER COLUMN slot_from SET NOT NULL, ALTER COLUMN slot_to SET NOT NULL;
