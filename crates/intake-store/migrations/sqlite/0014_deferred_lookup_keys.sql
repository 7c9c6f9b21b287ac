-- The look-up keys are derived after the batches that store their versions instead of in
-- each batch's transaction (BENCHMARKS.md, issue 12): every version with an id up to
-- `keyed_through` has its keys in `lookup_keys`; the worker keys the rest between two
-- requests, and every reader of the associations keys them before its snapshot. The keys
-- written so far were written with their versions (or are the backfill's, still to come
-- when `store_upkeep` says so: then every version is keyed again).
CREATE TABLE lookup_progress (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    keyed_through INTEGER NOT NULL
);
INSERT INTO lookup_progress (id, keyed_through)
    SELECT 1, CASE WHEN (SELECT done FROM store_upkeep WHERE name = 'lookup_keys') = 1
        THEN coalesce((SELECT max(id) FROM record_versions), 0) ELSE 0 END;
UPDATE store_upkeep SET done = 1 WHERE name = 'lookup_keys';
