-- Sessions of the web console (/ui/): the SHA-256 of the cookie's random id (the id itself
-- is never stored), the access key signed in with (checked on every request, so a revoked
-- key ends its sessions), the CSRF token of its forms, and when it was last used (unix ms;
-- idle past the server's limit, it has ended).
CREATE TABLE ui_sessions (
    id_hash      BLOB PRIMARY KEY,
    access_key   TEXT NOT NULL,
    company_id   INTEGER NOT NULL REFERENCES companies(id),
    csrf_token   TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL
);
CREATE INDEX ui_sessions_last_seen ON ui_sessions (last_seen_ms);
