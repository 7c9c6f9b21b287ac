-- Every error of a request and its failed lines are kept in two append-only files beside
-- the spool (`SIDECAR.errors`, `SIDECAR.failed`); a request records which files and how
-- many bytes of each its checkpoint covers (bytes past them are from a batch that was
-- never committed). NULL for requests without an error line yet, and before this version.
ALTER TABLE requests ADD COLUMN sidecar TEXT;
ALTER TABLE requests ADD COLUMN errors_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN failed_bytes INTEGER NOT NULL DEFAULT 0;

-- Webhooks of a company, and one delivery per webhook and finished request, stored in the
-- transaction that finishes the request and sent by one worker at a time under a lease.
CREATE TABLE webhooks (
    webhook_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id    INTEGER NOT NULL,
    url           TEXT NOT NULL,
    secret        TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX webhooks_of_company ON webhooks (company_id, webhook_id);

CREATE TABLE webhook_deliveries (
    delivery_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id       INTEGER NOT NULL,
    seq              INTEGER NOT NULL,
    event            TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_status      INTEGER,
    created_at_ms    INTEGER NOT NULL,
    delivered_at_ms  INTEGER,
    next_attempt_ms  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_ms INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms) WHERE state = 'PENDING';
CREATE INDEX webhook_deliveries_of ON webhook_deliveries (webhook_id, delivery_id);
