-- 0061: keep a plan version's packed steps in its row (issue 16). A row is about 3.1 KB before compression: the packed
-- steps (1.5 KB on average, 2.7 KB at most for 48 steps), the three 48-hour arrays (1 KB, which pglz shrinks to 0.3 KB)
-- and the policy and requests documents. With the default target of 2 KB PostgreSQL compresses the arrays and then still
-- moves the steps to the TOAST table: a second row, a TOAST index entry and a new OID per published version, and an index
-- probe per plan when the serving cache reads them back. With a target of 2.6 KB the arrays are still compressed first,
-- and the steps of all but the largest plans then fit in the row; three such rows fill a page as the TOAST form did a
-- page and a half, so a version takes no more room than before (bench/README.md, branch `planspeed`).
ALTER TABLE plan_versions SET (toast_tuple_target = 2600);
