-- As in the SQLite backend: the web console's sessions, shared by every instance.
CREATE TABLE ui_sessions (
    id_hash      BYTEA PRIMARY KEY,
    access_key   TEXT COLLATE "C" NOT NULL,
    company_id   BIGINT NOT NULL REFERENCES companies(id),
    csrf_token   TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);
CREATE INDEX ui_sessions_last_seen ON ui_sessions (last_seen_ms);
