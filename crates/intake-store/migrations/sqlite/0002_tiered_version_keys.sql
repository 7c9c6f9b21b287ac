-- The key of every version moves out of one big index into two tiers: inserts go to a
-- small `recent_version_keys`, and the worker merges it into `version_keys` in the
-- background, range by range, so a batch no longer rewrites pages scattered over an index
-- of every version ever stored. Reads consult both tiers (`all_version_keys`). Bodies stay
-- where they are, appended in arrival order; `id` now names them for good (an implicit
-- rowid may change on VACUUM).
CREATE TABLE record_versions_v2 (
    id             INTEGER PRIMARY KEY,
    integration_id INTEGER NOT NULL,
    object_type    INTEGER NOT NULL,
    object_id      TEXT NOT NULL,
    modified       INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    line           INTEGER NOT NULL,
    deleted        INTEGER NOT NULL,
    body           TEXT NOT NULL
);
INSERT INTO record_versions_v2
    (id, integration_id, object_type, object_id, modified, seq, line, deleted, body)
    SELECT rowid, integration_id, object_type, object_id, modified, seq, line, deleted, body
    FROM record_versions ORDER BY rowid;
DROP TABLE record_versions;
ALTER TABLE record_versions_v2 RENAME TO record_versions;

CREATE TABLE version_keys (
    integration_id INTEGER NOT NULL,
    object_type    INTEGER NOT NULL,
    object_id      TEXT NOT NULL,
    modified       INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    version_id     INTEGER NOT NULL,
    PRIMARY KEY (integration_id, object_type, object_id, modified, seq)
) WITHOUT ROWID;

CREATE TABLE recent_version_keys (
    integration_id INTEGER NOT NULL,
    object_type    INTEGER NOT NULL,
    object_id      TEXT NOT NULL,
    modified       INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    version_id     INTEGER NOT NULL,
    PRIMARY KEY (integration_id, object_type, object_id, modified, seq)
) WITHOUT ROWID;

INSERT INTO version_keys (integration_id, object_type, object_id, modified, seq, version_id)
    SELECT integration_id, object_type, object_id, modified, seq, id
    FROM record_versions ORDER BY integration_id, object_type, object_id, modified, seq;

CREATE VIEW all_version_keys AS
    SELECT integration_id, object_type, object_id, modified, seq, version_id FROM version_keys
    UNION ALL
    SELECT integration_id, object_type, object_id, modified, seq, version_id FROM recent_version_keys;

-- How many keys each tier holds, kept in the transactions that change them; the merge
-- policy reads it.
CREATE TABLE version_key_tiers (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    main_keys   INTEGER NOT NULL,
    recent_keys INTEGER NOT NULL
);
INSERT INTO version_key_tiers (id, main_keys, recent_keys)
    VALUES (1, (SELECT count(*) FROM version_keys), 0);
