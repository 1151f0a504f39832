-- Task leases (several worker processes on one database): which worker runs a task, until
-- when, and under which fencing epoch. Every journal append a worker makes for the task
-- carries the epoch, and the store refuses it unless it is the task's current one and the
-- lease has not expired (AMAS-STORE-0014). A row is never deleted while its task exists: the
-- epoch only grows, so a worker that lost its lease can never present the current epoch again.
CREATE TABLE task_leases (
    task_id     UUID        NOT NULL PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    epoch       BIGINT      NOT NULL CHECK (epoch >= 1),
    worker      TEXT        NOT NULL,
    claimed_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

-- What claimers scan: the unfinished tasks, highest priority first, then oldest.
CREATE INDEX tasks_runnable ON tasks (priority DESC, created_at, id)
    WHERE status IN ('queued', 'running', 'waiting_approval');
