-- Named leases (the rotation scheduler's `scheduler` lease): held by `holder` until `expires_at`
-- (unix seconds), renewed by the holder, taken over by anyone once expired.
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL
);
