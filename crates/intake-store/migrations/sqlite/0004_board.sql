-- The deal board's projection: for each stored version of a DEAL, ACCOUNT or BUSINESS_USER,
-- the few values of its body the board reads, each as the raw JSON text the body holds
-- (`"Acme"` with its quotes, `1.50` as sent; NULL when the body has no such key), written
-- in the transaction that stores the version (intake_model::board_facts). The board reads
-- these narrow rows instead of parsing every body. Keyed by request sequence and line, so
-- that a batch appends at the end of its type's range.
--   label: DEAL and ACCOUNT `name`, BUSINESS_USER `emailAddress`; the others: DEAL only.
CREATE TABLE board_facts (
    integration_id INTEGER NOT NULL,
    object_type    INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    line           INTEGER NOT NULL,
    object_id      TEXT NOT NULL,
    modified       INTEGER NOT NULL,
    deleted        INTEGER NOT NULL,
    label          TEXT,
    status         TEXT,
    stage          TEXT,
    account_id     TEXT,
    owner_id       TEXT,
    close_date     TEXT,
    amount         TEXT,
    PRIMARY KEY (integration_id, object_type, seq, line)
) WITHOUT ROWID;

-- The versions stored before this migration. `->` gives a value's JSON text as the body
-- holds it; a JSON null counts as absent, as in intake_model::board_facts.
INSERT INTO board_facts (integration_id, object_type, seq, line, object_id, modified, deleted,
                         label, status, stage, account_id, owner_id, close_date, amount)
    SELECT integration_id, object_type, seq, line, object_id, modified, deleted,
        nullif(CASE object_type WHEN 4 THEN body -> '$.emailAddress' ELSE body -> '$.name' END,
               'null'),
        CASE object_type WHEN 2 THEN nullif(body -> '$.status', 'null') END,
        CASE object_type WHEN 2 THEN nullif(body -> '$.stage', 'null') END,
        CASE object_type WHEN 2 THEN nullif(body -> '$.accountId', 'null') END,
        CASE object_type WHEN 2 THEN nullif(body -> '$.ownerId', 'null') END,
        CASE object_type WHEN 2 THEN nullif(body -> '$.closeDate', 'null') END,
        CASE object_type WHEN 2 THEN nullif(body -> '$.amount', 'null') END
    FROM record_versions
    -- ACCOUNT, DEAL, BUSINESS_USER (intake_model::ObjectType::code)
    WHERE object_type IN (0, 2, 4)
    ORDER BY integration_id, object_type, seq, line;
