-- The look-up keys are derived after the batches that store their versions instead of in
-- each batch's transaction (BENCHMARKS.md, issue 12): an upload's lines up to
-- `keyed_line` have their keys; the worker keys the rest between two requests, and every
-- reader of the associations keys them before its snapshot. Keys are derived from the
-- versions in the recent tiers (found by request and line), and a merge keys every upload
-- before it moves a tier into the main table, so an unkeyed version is always in a recent
-- tier. The keys written so far were written with their versions.
ALTER TABLE requests ADD COLUMN keyed_line BIGINT NOT NULL DEFAULT 0;
UPDATE requests SET keyed_line = checkpoint_line;
CREATE INDEX requests_unkeyed ON requests (integration_id, seq)
    WHERE kind = 'UPLOAD' AND keyed_line < checkpoint_line;
-- BRIN: a batch's versions are appended together, so a block range holds few requests and
-- lines, and the index costs a batch nearly nothing (a B-tree on the same columns made the
-- bench's upload a third slower). The keyer summarizes new ranges before it reads.
CREATE INDEX recent_versions_0_lines ON recent_versions_0 USING brin (seq, line)
    WITH (pages_per_range = 16);
CREATE INDEX recent_versions_1_lines ON recent_versions_1 USING brin (seq, line)
    WITH (pages_per_range = 16);
