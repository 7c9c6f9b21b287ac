-- What the requests list shows: the spooled file's size, and when processing started and
-- ended (unix milliseconds; NULL until it happens, and for requests finished before this
-- migration). A request may now also end CANCELLED.
ALTER TABLE requests ADD COLUMN file_bytes INTEGER;
ALTER TABLE requests ADD COLUMN started_at_ms INTEGER;
ALTER TABLE requests ADD COLUMN finished_at_ms INTEGER;
CREATE INDEX requests_listed ON requests (company_id, integration_id, seq);
