-- The look-up keys are stored as 64-bit hashes of their texts (XXH3; see
-- `crate::lookups::key_hash`): an index about a third of the size, of integer comparisons,
-- and no text of the people looked up. Every version is keyed again: those in the recent
-- tiers by the keyer (every upload's `keyed_line` back to 0), those in the main table by
-- the backfill when the store opens (`store_upkeep`), as for a store from before the
-- look-ups.
DROP VIEW all_lookup_keys;
DROP TABLE lookup_keys, recent_lookup_keys_0, recent_lookup_keys_1;
CREATE TABLE lookup_keys (
    integration_id BIGINT NOT NULL,
    kind           SMALLINT NOT NULL,
    key_hash       BIGINT NOT NULL,
    object_type    SMALLINT NOT NULL,
    object_id      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (integration_id, kind, key_hash, object_type, object_id)
);
CREATE TABLE recent_lookup_keys_0 (LIKE lookup_keys INCLUDING ALL);
CREATE TABLE recent_lookup_keys_1 (LIKE lookup_keys INCLUDING ALL);
CREATE VIEW all_lookup_keys AS
    SELECT * FROM lookup_keys
    UNION ALL SELECT * FROM recent_lookup_keys_0
    UNION ALL SELECT * FROM recent_lookup_keys_1;
UPDATE requests SET keyed_line = 0 WHERE kind = 'UPLOAD';
UPDATE store_upkeep SET done = NOT EXISTS (SELECT 1 FROM record_versions)
    WHERE name = 'lookup_keys';
