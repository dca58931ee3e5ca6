-- 0150: model artifacts in packs (issue 16). Training writes one file per batch holding its models' artifacts, one JSON
-- document per line; a model version keeps the pack's path in `artifact` and its artifact's place in the pack here (byte
-- offset and length). Versions written before (one file per version) keep both null: the whole file is the artifact.
ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS artifact_offset bigint, ADD COLUMN IF NOT EXISTS artifact_length integer;
