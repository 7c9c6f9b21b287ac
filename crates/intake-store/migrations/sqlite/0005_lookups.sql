-- The look-up keys of the associations: for each key (a normalised email, a phone key, an
-- account domain, a deal's account), the records one of whose versions carried it. Written
-- in each batch's transaction; a reader checks each record against its state at the time
-- asked (see intake_model::associate). Filled for the versions stored before this
-- migration by the store when it opens (`store_upkeep` row `lookup_keys`).
CREATE TABLE lookup_keys (
    integration_id INTEGER NOT NULL,
    kind           INTEGER NOT NULL,
    key            TEXT NOT NULL,
    object_type    INTEGER NOT NULL,
    object_id      TEXT NOT NULL,
    PRIMARY KEY (integration_id, kind, key, object_type, object_id)
) WITHOUT ROWID;

-- internalDomains and excludedDomains per integration, as one JSON text.
CREATE TABLE integration_settings (
    integration_id INTEGER PRIMARY KEY,
    settings       TEXT NOT NULL
);

-- One-off work the store does when it opens, and whether it is done.
CREATE TABLE store_upkeep (
    name TEXT PRIMARY KEY,
    done INTEGER NOT NULL
);
INSERT INTO store_upkeep (name, done)
    SELECT 'lookup_keys', CASE WHEN EXISTS (SELECT 1 FROM record_versions) THEN 0 ELSE 1 END;
