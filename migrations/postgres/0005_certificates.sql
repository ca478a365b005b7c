-- Certificates of keys (DESIGN.md "Certificates"): the chain attached last (`certificate_chain`,
-- a JSON array of standard base64 DER, leaf first, i.e. the JWK's `x5c`), its leaf's notAfter,
-- and when a chain was first attached. `certificate_required` (0/1) is set on keys created while
-- their key set had `require_certificate = true`: such a key does not take over signing before
-- `certified_at` (see keys::lifecycle).
ALTER TABLE keys ADD COLUMN certificate_required BIGINT NOT NULL DEFAULT 0;
ALTER TABLE keys ADD COLUMN certified_at BIGINT;
ALTER TABLE keys ADD COLUMN certificate_chain TEXT;
ALTER TABLE keys ADD COLUMN certificate_not_after BIGINT;
