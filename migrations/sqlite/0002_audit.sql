-- Append-only, hash-chained audit trail. `hash` = SHA-256 over the previous hash and this row's
-- fields (see keys::audit); `audit_head` holds the last seq and hash so that removing the newest
-- rows is detected too.
CREATE TABLE audit (
    seq       BIGINT  PRIMARY KEY,
    at        BIGINT  NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    key_set   TEXT,
    kid       TEXT,
    detail    TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);

CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   BIGINT  NOT NULL,
    hash  TEXT    NOT NULL
);
