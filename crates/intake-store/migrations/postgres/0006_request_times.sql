-- As in the SQLite backend: file size, start and end of processing (unix ms, database
-- clock), and the index the requests list pages on.
ALTER TABLE requests ADD COLUMN file_bytes BIGINT;
ALTER TABLE requests ADD COLUMN started_at_ms BIGINT;
ALTER TABLE requests ADD COLUMN finished_at_ms BIGINT;
CREATE INDEX requests_listed ON requests (company_id, integration_id, seq);
