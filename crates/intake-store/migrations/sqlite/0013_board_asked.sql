-- When a client last asked for the integration's deal board (unix ms; NULL: never). The
-- servers keep in memory, and warm, only the boards asked for in the last hour: a board
-- nobody looks at holds no memory, and one in use is warm again after a restart.
ALTER TABLE integrations ADD COLUMN board_asked_ms BIGINT;
