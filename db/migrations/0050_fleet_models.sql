-- 0050: the fleet-wide model of the active training run, stored once (issue 16). The instance that trains it (the first to
-- take the run's advisory lock) stores its ML.NET zip here before letting the lock go; every other instance running shards
-- of the run loads it from here instead of training it again, whether or not the instances share a models volume. Only the
-- active run's row is needed (the trainer drops older ones); each model's zip also stays under the models directory.
CREATE TABLE IF NOT EXISTS fleet_models (
    run_id          bigint             PRIMARY KEY REFERENCES training_runs (id) ON DELETE CASCADE,
    version         text               NOT NULL,   -- the zip's path under the models directory, which series' models name
    artifact        bytea,                         -- the ML.NET zip; null when the fleet gave too little to train on
    residual_rms    double precision[],            -- the model's in-sample spread per horizon step (not in the zip)
    training_rows   integer            NOT NULL,
    training_series integer            NOT NULL,
    trained_at      timestamptz        NOT NULL
);
