CREATE TABLE companies (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE access_keys (
    access_key  TEXT PRIMARY KEY,
    company_id  INTEGER NOT NULL REFERENCES companies(id),
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE tokens (
    token_id    TEXT PRIMARY KEY,
    company_id  INTEGER NOT NULL REFERENCES companies(id),
    secret_hash BLOB NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE integrations (
    id          INTEGER PRIMARY KEY,
    company_id  INTEGER NOT NULL REFERENCES companies(id),
    name        TEXT NOT NULL,
    owner_email TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    deleted     INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX one_active_integration ON integrations(company_id) WHERE deleted = 0;

CREATE TABLE schema_fields (
    integration_id INTEGER NOT NULL,
    object_type    INTEGER NOT NULL,
    unique_name    TEXT NOT NULL,
    definition     TEXT NOT NULL,
    PRIMARY KEY (integration_id, object_type, unique_name)
) WITHOUT ROWID;

CREATE TABLE requests (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id        INTEGER NOT NULL,
    client_request_id TEXT NOT NULL,
    integration_id    INTEGER NOT NULL,
    kind              TEXT NOT NULL,
    object_type       INTEGER,
    spool_file        TEXT,
    status            TEXT NOT NULL,
    success_count     INTEGER NOT NULL DEFAULT 0,
    error_count       INTEGER NOT NULL DEFAULT 0,
    listed_errors     INTEGER NOT NULL DEFAULT 0,
    checkpoint_line   INTEGER NOT NULL DEFAULT 0,
    accepted_at       INTEGER NOT NULL,
    lease_owner       TEXT,
    lease_expires_ms  INTEGER,
    UNIQUE (company_id, client_request_id)
);
CREATE INDEX requests_open ON requests(status, seq) WHERE status IN ('PENDING', 'IN_PROGRESS');

CREATE TABLE request_errors (
    seq         INTEGER NOT NULL,
    line        INTEGER NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (seq, line)
) WITHOUT ROWID;

CREATE TABLE record_versions (
    integration_id INTEGER NOT NULL,
    object_type    INTEGER NOT NULL,
    object_id      TEXT NOT NULL,
    modified       INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    line           INTEGER NOT NULL,
    deleted        INTEGER NOT NULL,
    body           TEXT NOT NULL
);
-- Bodies are appended in arrival order; only this narrow index takes random inserts, so
-- it stays in the page cache far longer than a table clustered on the key would.
CREATE UNIQUE INDEX record_versions_key
    ON record_versions (integration_id, object_type, object_id, modified, seq);
