-- Key provenance: what the token says of each key's private object (DESIGN.md "Key provenance"),
-- 1 or 0; NULL for a key stored before Signet recorded it (reconciliation fills it in).
ALTER TABLE keys ADD COLUMN cka_local BIGINT;
ALTER TABLE keys ADD COLUMN always_sensitive BIGINT;
ALTER TABLE keys ADD COLUMN never_extractable BIGINT;
