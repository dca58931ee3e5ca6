-- 0040: plan versions stored without compression (issue 16, planning end to end). A plan version row is about 3.4 KB: the
-- packed steps (about 1.8 KB, EXTERNAL since 0010), three 48-hour arrays (counts, cpu_hours, memory_hours) and the policy.
-- Past PostgreSQL's toast threshold (about 2 KB) every insert tried pglz on each array and on the policy and requests
-- before it moved the packed steps to the TOAST table, which alone brings the row under the threshold: the compression
-- attempts were a twentieth of the database's CPU in a planning run, for rows that end up small either way. With the
-- arrays EXTERNAL and the JSON documents and notes MAIN, the toaster's first pass finds nothing to compress and moves only
-- the packed steps out; every value reads back the same. Rows stored before keep their form. Applied once by the
-- migration runner; a re-run sets the same storage.
ALTER TABLE plan_versions ALTER COLUMN counts SET STORAGE EXTERNAL;
ALTER TABLE plan_versions ALTER COLUMN cpu_hours SET STORAGE EXTERNAL;
ALTER TABLE plan_versions ALTER COLUMN memory_hours SET STORAGE EXTERNAL;
ALTER TABLE plan_versions ALTER COLUMN policy SET STORAGE MAIN;
ALTER TABLE plan_versions ALTER COLUMN requests SET STORAGE MAIN;
ALTER TABLE plan_versions ALTER COLUMN notes SET STORAGE MAIN;
