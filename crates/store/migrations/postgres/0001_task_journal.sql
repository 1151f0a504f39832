-- The task journal (source of truth) and the listing projection kept in step with it.
-- Events are `json`, not `jsonb`: jsonb rejects the escape \u0000, which model output may
-- contain, and the journal must keep every event exactly as appended.

CREATE TABLE tasks (
    id          UUID        NOT NULL PRIMARY KEY,
    tenant      TEXT        NOT NULL,
    task_type   TEXT        NOT NULL,
    title       TEXT        NOT NULL,
    priority    SMALLINT    NOT NULL CHECK (priority BETWEEN 1 AND 10),
    status      TEXT        NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    last_seq    BIGINT      NOT NULL CHECK (last_seq >= 1)
);

CREATE INDEX tasks_status_id ON tasks (status, id);
CREATE INDEX tasks_task_type_id ON tasks (task_type, id);
CREATE INDEX tasks_tenant_id ON tasks (tenant, id);
CREATE INDEX tasks_tenant_status_id ON tasks (tenant, status, id);

CREATE TABLE journal (
    task_id     UUID        NOT NULL REFERENCES tasks (id),
    seq         BIGINT      NOT NULL CHECK (seq >= 1),
    recorded_at TIMESTAMPTZ NOT NULL,
    kind        TEXT        NOT NULL,
    event       JSON        NOT NULL,
    PRIMARY KEY (task_id, seq)
);
