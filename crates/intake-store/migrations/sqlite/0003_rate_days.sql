-- Each company's calls on its current UTC day (in unix days), so that the daily rate limit
-- holds across a restart. The per-second window stays in memory. Written back from memory
-- at most once a second and when the store is dropped, never on the call itself.
CREATE TABLE rate_days (
    company_id INTEGER PRIMARY KEY,
    day        INTEGER NOT NULL,
    count      INTEGER NOT NULL
) WITHOUT ROWID;
