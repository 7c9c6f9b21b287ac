-- The look-up keys are derived after the batches that store their versions instead of in
-- each batch's transaction (BENCHMARKS.md, issue 12): an upload's lines up to
-- `keyed_line` have their keys; the worker keys the rest between two requests, and every
-- reader of the associations keys them before its snapshot. Keys are derived from the
-- versions in the recent tiers (found by request and line), and a merge keys every upload
-- before it moves a tier into the main table, so an unkeyed version is always in a recent
-- tier (by request, through the primary key's `seq` column; a B-tree on (seq, line) made
-- the bench's upload a third slower, and the planner would not use a BRIN one). The keys
-- written so far were written with their versions.
ALTER TABLE requests ADD COLUMN keyed_line BIGINT NOT NULL DEFAULT 0;
UPDATE requests SET keyed_line = checkpoint_line;
CREATE INDEX requests_unkeyed ON requests (integration_id, seq)
    WHERE kind = 'UPLOAD' AND keyed_line < checkpoint_line;
