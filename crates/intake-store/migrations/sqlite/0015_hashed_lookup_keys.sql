-- The look-up keys are stored as 64-bit hashes of their texts (XXH3; see
-- `crate::lookups::key_hash`): an index about a third of the size, of integer comparisons,
-- and no text of the people looked up. Every version is keyed again by the keyer (the
-- first association after the upgrade waits for it: about 10 s per million versions).
DROP TABLE lookup_keys;
CREATE TABLE lookup_keys (
    integration_id INTEGER NOT NULL,
    kind           INTEGER NOT NULL,
    key_hash       INTEGER NOT NULL,
    object_type    INTEGER NOT NULL,
    object_id      TEXT NOT NULL,
    PRIMARY KEY (integration_id, kind, key_hash, object_type, object_id)
) WITHOUT ROWID;
UPDATE lookup_progress SET keyed_through = 0;
