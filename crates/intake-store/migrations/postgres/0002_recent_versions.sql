-- Versions arrive in a small `recent_versions` table and are merged into `record_versions`
-- in key order in the background (see the store), so that a batch's index inserts land on
-- an index about the size of the last uploads instead of pages scattered over one that
-- holds every version. Reads look in both; a version is in exactly one of them.
CREATE TABLE recent_versions (LIKE record_versions INCLUDING ALL);
