-- Recent tiers (issue 17). A batch's versions and look-up keys go into the active one of
-- two small recent tables; the worker swaps the two and merges the inactive one into the
-- main table (`record_versions`, `lookup_keys`) in key order, then empties it with
-- TRUNCATE (no dead tuples). So a batch lands on a small index whatever the store holds.
-- The stored versions stay where they are: this migration only adds the empty tiers.
CREATE TABLE recent_versions_0 (LIKE record_versions INCLUDING ALL);
CREATE TABLE recent_versions_1 (LIKE record_versions INCLUDING ALL);
CREATE TABLE recent_lookup_keys_0 (LIKE lookup_keys INCLUDING ALL);
CREATE TABLE recent_lookup_keys_1 (LIKE lookup_keys INCLUDING ALL);

-- Reads see every tier. A version is in at most one tier, except one replayed across a
-- swap (the same batch applied again after the first copy was merged or swapped out):
-- then both copies are the same row (same key, line and body), and the merge keeps one.
CREATE VIEW all_versions AS
    SELECT * FROM record_versions
    UNION ALL SELECT * FROM recent_versions_0
    UNION ALL SELECT * FROM recent_versions_1;
CREATE VIEW all_lookup_keys AS
    SELECT * FROM lookup_keys
    UNION ALL SELECT * FROM recent_lookup_keys_0
    UNION ALL SELECT * FROM recent_lookup_keys_1;

-- Which recent tier batches write to (0 or 1). A batch reads it FOR SHARE in its
-- transaction; the swap's UPDATE waits for those batches, so once it commits no batch
-- writes to the other tier any more, and it can be merged and truncated.
CREATE TABLE version_tiers (
    id     SMALLINT PRIMARY KEY CHECK (id = 1),
    active SMALLINT NOT NULL CHECK (active IN (0, 1)),
    swaps  BIGINT NOT NULL DEFAULT 0
);
INSERT INTO version_tiers (id, active) VALUES (1, 0);
