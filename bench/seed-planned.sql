-- Seeds :n resources as the planner finds them after a training run: 80% services and 20% streaming jobs, a third with
-- a time window, an active load model each (10% not beating seasonal naive, so those fall back), a 48-hour forecast and
-- weekly peaks. Used by bench/plan.sh and bench/serve.sh (`psql -v n=N -f`).
INSERT INTO resources (name, kind, "group", load_metric, policy, created_at, updated_at)
SELECT 'bench-' || i,
       CASE WHEN i % 5 = 0 THEN 'job' ELSE 'service' END,
       'g' || (i % 20),
       CASE WHEN i % 5 = 0 THEN 'records_in_rate' ELSE 'qps' END,
       CASE WHEN i % 5 = 0
            THEN jsonb_build_object('minReplicas', 1, 'maxReplicas', 720, 'maxParallelism', 720, 'capacityPerSubtask', 500 + i % 5000,
                                    'backlogMetric', 'backlog_records')
            ELSE jsonb_build_object('minReplicas', 1 + i % 4, 'maxReplicas', 300, 'capacityPerReplica', 20 + i % 200,
                                    'maxStepUp', 10, 'maxStepDown', 5, 'scaleDownDelayHours', i % 4)
                 || CASE WHEN i % 3 = 0
                         THEN '{"windows":[{"days":"Mon-Fri","from":"19:00","to":"23:00","timeZone":"Asia/Shanghai","minReplicas":12}]}'::jsonb
                         ELSE '{}'::jsonb END
       END,
       now(), now()
FROM generate_series(1, :n) AS i;
INSERT INTO model_versions (resource_id, metric, status, trained_at, beats_seasonal_naive)
SELECT id, load_metric, 'active', now(), id % 10 <> 0 FROM resources;
-- The same 48 hours as before the forecasts were stored as one row of arrays per series (migration 0070).
INSERT INTO series_forecasts (resource_id, metric, model_version_id, generated_at, start, step, forecast, lower, upper)
SELECT mv.resource_id, mv.metric, mv.id, now(), min(h), interval '1 hour',
       array_agg(f ORDER BY h), array_agg(f * 0.8 ORDER BY h), array_agg(f * 1.25 ORDER BY h)
FROM model_versions mv
CROSS JOIN generate_series(date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                           (date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') + interval '47 hours', interval '1 hour') AS h
CROSS JOIN LATERAL (SELECT exp((mv.resource_id % 97) / 11.0) * (1 + 0.6 * sin(extract(epoch FROM h) / 13751.0 + mv.resource_id)) AS f) x
GROUP BY mv.resource_id, mv.metric, mv.id;
INSERT INTO weekly_peaks (resource_id, cpu_cores, memory_bytes, window_from, window_to, computed_at)
SELECT id, 0.2 + (id % 30) / 10.0, (256 + id % 1024) * 1048576::bigint, now() - interval '7 days', now(), now() FROM resources;
ANALYZE;
