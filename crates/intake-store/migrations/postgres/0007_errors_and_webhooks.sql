-- As in the SQLite backend: the sidecar files of every error and failed line, and the
-- webhooks with their deliveries.
ALTER TABLE requests ADD COLUMN sidecar TEXT;
ALTER TABLE requests ADD COLUMN errors_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN failed_bytes BIGINT NOT NULL DEFAULT 0;

CREATE TABLE webhooks (
    webhook_id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id    BIGINT NOT NULL REFERENCES companies(id),
    url           TEXT NOT NULL,
    secret        TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX webhooks_of_company ON webhooks (company_id, webhook_id);

CREATE TABLE webhook_deliveries (
    delivery_id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       BIGINT NOT NULL,
    seq              BIGINT NOT NULL,
    event            TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    last_status      BIGINT,
    created_at_ms    BIGINT NOT NULL,
    delivered_at_ms  BIGINT,
    next_attempt_ms  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_expires_ms BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms) WHERE state = 'PENDING';
CREATE INDEX webhook_deliveries_of ON webhook_deliveries (webhook_id, delivery_id);
