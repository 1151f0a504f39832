-- Retention: a journal row whose payloads a purge replaced with tombstones records when, so a
-- purge is idempotent and history shows what was deleted. Ended tasks are found by their last
-- event's time.
ALTER TABLE journal ADD COLUMN purged_at TIMESTAMPTZ;

CREATE INDEX tasks_status_updated_at ON tasks (status, updated_at);
