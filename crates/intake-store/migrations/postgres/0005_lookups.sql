-- As in the SQLite backend: the look-up keys of the associations (a superset index, see
-- intake_model::associate), the domain settings per integration, and one-off upkeep done
-- when the store opens (filling the keys of versions stored before this migration).
CREATE TABLE lookup_keys (
    integration_id BIGINT NOT NULL,
    kind           SMALLINT NOT NULL,
    key            TEXT COLLATE "C" NOT NULL,
    object_type    SMALLINT NOT NULL,
    object_id      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (integration_id, kind, key, object_type, object_id)
);

CREATE TABLE integration_settings (
    integration_id BIGINT PRIMARY KEY,
    settings       TEXT NOT NULL
);

CREATE TABLE store_upkeep (
    name TEXT PRIMARY KEY,
    done BOOLEAN NOT NULL
);
INSERT INTO store_upkeep (name, done)
    SELECT 'lookup_keys', NOT EXISTS (SELECT 1 FROM record_versions);
