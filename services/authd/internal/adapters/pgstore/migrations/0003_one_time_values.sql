-- One-time values shared by every replica until they expire: DPoP proof
-- jti per key, client-assertion jti. A primary-key insert decides
-- atomically who saw a value first.
CREATE TABLE one_time_values (
    scope      text        NOT NULL,
    value      text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (scope, value)
);
CREATE INDEX one_time_values_expiry_idx ON one_time_values (expires_at);

-- Server-generated secrets every replica must share (e.g. the DPoP nonce
-- key). Created once by whichever replica gets there first.
CREATE TABLE server_secrets (
    name       text        PRIMARY KEY,
    secret     bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
