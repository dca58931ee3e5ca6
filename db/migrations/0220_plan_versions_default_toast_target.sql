-- 0220: plan versions back at PostgreSQL's default toast target (issue 16). Migration 0061 raised it to 2.6 KB so that a
-- row's packed steps (1.5 KB on average in format 1, 2.7 KB at most) stayed in the row instead of going to the TOAST table.
-- Format 2 of the packed steps (src/Api/Plans/PackedSteps.cs) takes 560 bytes on average and 1.26 KB at most, so a row is
-- about 2.26 KB before compression: under 2.6 KB nothing was compressed and three rows filled a page. At the default
-- (2,032 bytes) the per-step arrays and documents are compressed (lz4, migrations 0110 and 0200) and the steps stay in the
-- row: about 1.85 KB a row, four to a page; 100,000 versions took 405 MB instead of 542 MB with no measurable change in
-- PostgreSQL's CPU for the run (bench/README.md, session 11). Older rows are not rewritten. Idempotent.
ALTER TABLE plan_versions RESET (toast_tuple_target);
