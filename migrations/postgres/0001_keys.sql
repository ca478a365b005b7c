-- Keys of every key set (same columns as migrations/sqlite). Public JWKs are kept forever;
-- private objects live only in the HSM.
CREATE TABLE keys (
    key_set       TEXT    NOT NULL,
    kid           TEXT    NOT NULL,
    alg           TEXT    NOT NULL,
    hsm           TEXT    NOT NULL,
    hsm_id        BYTEA   NOT NULL,
    public_jwk    TEXT    NOT NULL,
    origin        TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    activate_at   BIGINT  NOT NULL,
    revoked_at    BIGINT,
    revoke_reason TEXT,
    destroyed_at  BIGINT,
    PRIMARY KEY (key_set, kid)
);
