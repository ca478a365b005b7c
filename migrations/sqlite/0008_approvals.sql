-- The two-person rule (DESIGN.md "HTTP API v1", `[approvals]`): an admin request held until a
-- different admin client approves or rejects it. `request` is the JSON of the request to carry
-- out; `status` is `pending`, `approved` or `rejected` (a pending one past `expires_at` is shown
-- as expired and can no longer be decided). Kept in the store so that approvals survive
-- restarts and any replica can decide them.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    key_set TEXT NOT NULL,
    kid TEXT,
    request TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    decided_by TEXT,
    decided_at BIGINT
);
CREATE INDEX approvals_status ON approvals (status, expires_at);
