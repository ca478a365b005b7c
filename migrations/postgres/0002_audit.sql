-- Append-only, hash-chained audit trail (see keys::audit). `audit_head` holds the last seq and
-- hash. Unlike SQLite, its row exists from the start (seq 0 = empty trail) so that every writer can
-- lock it with SELECT ... FOR UPDATE: writers on every replica append one after the other.
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

INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
