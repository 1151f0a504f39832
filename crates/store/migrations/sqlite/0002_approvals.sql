-- no-transaction
-- Approvals: tasks gain the `waiting_approval` status, and a projection of approval requests
-- (kept in step with the journal in the same transaction) answers "what is pending for me".
--
-- SQLite cannot alter a CHECK constraint, so `tasks` is rebuilt by SQLite's documented
-- procedure for other schema changes: foreign keys off (only possible outside a transaction,
-- hence `no-transaction`), rebuild inside one transaction, back on. Ids are copied unchanged,
-- so the journal's references stay valid.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE tasks_v2 (
    id          TEXT    NOT NULL PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    task_type   TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    priority    INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 10),
    status      TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'waiting_approval', 'succeeded', 'failed',
                          'cancelled')),
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    last_seq    INTEGER NOT NULL CHECK (last_seq >= 1)
) STRICT;

INSERT INTO tasks_v2 (id, tenant, task_type, title, priority, status, created_at, updated_at,
                      last_seq)
SELECT id, tenant, task_type, title, priority, status, created_at, updated_at, last_seq
FROM tasks;

DROP TABLE tasks;
ALTER TABLE tasks_v2 RENAME TO tasks;

CREATE INDEX tasks_status_id ON tasks (status, id);
CREATE INDEX tasks_task_type_id ON tasks (task_type, id);
CREATE INDEX tasks_tenant_id ON tasks (tenant, id);
CREATE INDEX tasks_tenant_status_id ON tasks (tenant, status, id);

-- `doc` is the folded `Approval` (request, votes, resolution) as JSON; the other columns are
-- copies of its fields for filtering. Ids are UUID v7 text: text order is creation order.
CREATE TABLE approvals (
    id          TEXT NOT NULL PRIMARY KEY,
    task_id     TEXT NOT NULL REFERENCES tasks (id),
    tenant      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    requested_by TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    doc         TEXT NOT NULL CHECK (json_valid(doc))
) STRICT;

CREATE INDEX approvals_tenant_status_id ON approvals (tenant, status, id);
CREATE INDEX approvals_status_id ON approvals (status, id);
CREATE INDEX approvals_task_id ON approvals (task_id);

COMMIT;
PRAGMA foreign_keys = ON;
