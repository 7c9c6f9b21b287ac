-- The deal board's cache (intake_store::board::BoardCache) keeps each record's latest facts
-- in memory and reads only the board_facts rows committed since it last looked. Rows already
-- written change in place only when a schema change drops facts or the integration is
-- purged: each raises its type's epoch here, and a cache that sees another epoch reads the
-- type again whole (in every instance). No row: epoch 0.
CREATE TABLE board_epochs (
    integration_id BIGINT NOT NULL,
    object_type    SMALLINT NOT NULL,
    epoch          BIGINT NOT NULL,
    PRIMARY KEY (integration_id, object_type)
);
