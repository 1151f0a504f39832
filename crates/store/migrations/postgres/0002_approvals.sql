-- Approvals: tasks gain the `waiting_approval` status, and a projection of approval requests
-- (kept in step with the journal in the same transaction) answers "what is pending for me".
ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check
    CHECK (status IN ('queued', 'running', 'waiting_approval', 'succeeded', 'failed',
                      'cancelled'));

-- `doc` is the folded `Approval` (request, votes, resolution); the other columns are copies of
-- its fields for filtering. Ids are UUID v7 text: text order is creation order.
CREATE TABLE approvals (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    task_id      UUID        NOT NULL REFERENCES tasks (id),
    tenant       TEXT        NOT NULL,
    status       TEXT        NOT NULL
        CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    requested_by TEXT        NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    doc          JSON        NOT NULL
);

CREATE INDEX approvals_tenant_status_id ON approvals (tenant, status, id);
CREATE INDEX approvals_status_id ON approvals (status, id);
CREATE INDEX approvals_task_id ON approvals (task_id);
