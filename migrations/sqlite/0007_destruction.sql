-- Delayed destruction (DESIGN.md "HTTP API v1", `DELETE .../keys/{kid}`): `destroy_at` is when
-- the scheduler destroys the key's private object (set by an admin's DELETE after the key set's
-- `destroy_delay`, or by the scheduler for `destroy_after`); NULL when nothing is pending.
-- `destroy_cancelled_at` records the last cancellation, so that `destroy_after` does not schedule
-- a key again that an operator chose to keep.
ALTER TABLE keys ADD COLUMN destroy_at BIGINT;
ALTER TABLE keys ADD COLUMN destroy_cancelled_at BIGINT;
