-- Projection state: which generation of the read-model table is live and the
-- last event position applied to it (written in the same transaction as the
-- read-model rows, which makes redelivery idempotent).
CREATE TABLE projections (
    name        text        PRIMARY KEY,
    generation  integer     NOT NULL DEFAULT 1,
    inline      boolean     NOT NULL DEFAULT false,
    pos_tx      xid8        NOT NULL DEFAULT '0',
    pos_seq     bigint      NOT NULL DEFAULT 0,
    applied_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

