-- The deal board's projection: for each stored version of a DEAL, ACCOUNT or BUSINESS_USER,
-- the few values of its body the board reads, each as the raw JSON text the body holds
-- (`"Acme"` with its quotes, `1.50` as sent; NULL when the body has no such key), written
-- in the transaction that stores the version (intake_model::board_facts). The board reads
-- these narrow rows instead of parsing every body. Keyed by request sequence and line, so
-- that a batch appends at the end of the index and a replayed line is recognised.
--   label: DEAL and ACCOUNT `name`, BUSINESS_USER `emailAddress`; the others: DEAL only.
CREATE TABLE board_facts (
    integration_id BIGINT NOT NULL,
    object_type    SMALLINT NOT NULL,
    seq            BIGINT NOT NULL,
    line           BIGINT NOT NULL,
    object_id      TEXT COLLATE "C" NOT NULL,
    modified       BIGINT NOT NULL,
    deleted        BOOLEAN NOT NULL,
    label          TEXT,
    status         TEXT,
    stage          TEXT,
    account_id     TEXT,
    owner_id       TEXT,
    close_date     TEXT,
    amount         TEXT,
    PRIMARY KEY (integration_id, object_type, seq, line)
);

-- The versions stored before this migration. `json ->` (not jsonb) gives a value's text as
-- the body holds it; a JSON null counts as absent, as in intake_model::board_facts.
-- PostgreSQL's JSON functions refuse a body with the escape \u0000 anywhere in it: in such
-- a body (rare) each \u0000 escape becomes \u0030 for the reading and back in what is read
-- (the model never writes \u0030: it writes '0' as itself). Only escapes are touched: a
-- backslash preceded by an even run of backslashes.
CREATE FUNCTION pg_temp.intake_board_fact(body TEXT, key TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN strpos(body, '\u0000') = 0 THEN nullif((body::json -> key)::text, 'null')
        ELSE regexp_replace(
            nullif((regexp_replace(body, '(?<!\\)((?:\\\\)*)\\u0000', '\1\\u0030', 'g')::json
                    -> key)::text, 'null'),
            '(?<!\\)((?:\\\\)*)\\u0030', '\1\\u0000', 'g')
    END
$$;

INSERT INTO board_facts (integration_id, object_type, seq, line, object_id, modified, deleted,
                         label, status, stage, account_id, owner_id, close_date, amount)
    SELECT integration_id, object_type, seq, line, object_id, modified, deleted,
        pg_temp.intake_board_fact(body,
            CASE object_type WHEN 4 THEN 'emailAddress' ELSE 'name' END),
        CASE object_type WHEN 2 THEN pg_temp.intake_board_fact(body, 'status') END,
        CASE object_type WHEN 2 THEN pg_temp.intake_board_fact(body, 'stage') END,
        CASE object_type WHEN 2 THEN pg_temp.intake_board_fact(body, 'accountId') END,
        CASE object_type WHEN 2 THEN pg_temp.intake_board_fact(body, 'ownerId') END,
        CASE object_type WHEN 2 THEN pg_temp.intake_board_fact(body, 'closeDate') END,
        CASE object_type WHEN 2 THEN pg_temp.intake_board_fact(body, 'amount') END
    FROM record_versions
    -- ACCOUNT, DEAL, BUSINESS_USER (intake_model::ObjectType::code)
    WHERE object_type IN (0, 2, 4);

DROP FUNCTION pg_temp.intake_board_fact(TEXT, TEXT);
