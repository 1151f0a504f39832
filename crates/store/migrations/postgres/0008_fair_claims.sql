-- Fair claims across tenants (start-time fair queueing; docs/architecture.md, scheduling). Each
-- tenant's pass is the virtual time its next task starts at: a claim moves it 1/weight per task
-- claimed. The clock is the system's virtual time (the start of the last task claimed): a
-- tenant whose pass fell behind it restarts from it, so an idle tenant banks no credit. Claims
-- with per-tenant caps lock the clock's row first, which serializes them across workers.
CREATE TABLE scheduler_tenants (
    tenant  TEXT             NOT NULL PRIMARY KEY,
    pass    DOUBLE PRECISION NOT NULL
);

CREATE TABLE scheduler_clock (
    id            SMALLINT         NOT NULL PRIMARY KEY CHECK (id = 1),
    virtual_time  DOUBLE PRECISION NOT NULL
);
INSERT INTO scheduler_clock (id, virtual_time) VALUES (1, 0);

-- What a claim scans: the tenants with unfinished tasks (a skip scan, one probe per tenant),
-- then each tenant's tasks in priority order, then age.
CREATE INDEX tasks_runnable_tenant ON tasks (tenant, priority DESC, created_at, id)
    WHERE status IN ('queued', 'running', 'waiting_approval');

-- The live leases (what each tenant runs now) without reading every lease ever granted.
CREATE INDEX task_leases_expires_at ON task_leases (expires_at);
