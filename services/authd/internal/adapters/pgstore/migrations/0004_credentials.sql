-- Credential verifiers (the Argon2id passcode verifier of a device), kept
-- out of the immutable event log: they are replaced on reset and deleted
-- when the device is revoked, so an old verifier does not live forever.
-- Written in the same transaction as the event that explains the change.
CREATE TABLE credentials (
    key        text        PRIMARY KEY,
    value      bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
