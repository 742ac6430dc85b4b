-- The event log. Rows are appended, never updated or deleted (enforced by
-- the trigger below). Readers order by (tx_id, seq) and only read rows of
-- transactions older than every running one (pg_snapshot_xmin), so a reader
-- paging by position never skips an event whose transaction committed late.
CREATE TABLE events (
    tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    seq            bigint      GENERATED ALWAYS AS IDENTITY,
    event_id       uuid        NOT NULL,
    stream_id      text        NOT NULL,
    stream_type    text        NOT NULL,
    version        bigint      NOT NULL CHECK (version > 0),
    type           text        NOT NULL,
    schema_version integer     NOT NULL CHECK (schema_version > 0),
    occurred_at    timestamptz NOT NULL,
    user_id        text,
    data           jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    -- Personal data (IP, user agent), apart from the payload so a per-user
    -- key can later make it erasable.
    personal       jsonb,
    PRIMARY KEY (tx_id, seq),
    UNIQUE (stream_id, version),
    UNIQUE (event_id)
);

CREATE INDEX events_user_idx ON events (user_id, tx_id, seq) WHERE user_id IS NOT NULL;

-- One row per stream: its type, owner and current version. Appends move the
-- version with a compare-and-set UPDATE, which is the optimistic concurrency
-- check; events itself stays append-only.
CREATE TABLE streams (
    stream_id   text   PRIMARY KEY,
    stream_type text   NOT NULL,
    user_id     text,
    version     bigint NOT NULL
);

CREATE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();
