-- The task journal (source of truth) and the listing projection kept in step with it.
-- Task ids are UUID v7 stored as lowercase hyphenated text, so text order is creation order.
-- Timestamps are fixed-width RFC 3339 UTC text with microseconds.

CREATE TABLE tasks (
    id          TEXT    NOT NULL PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    task_type   TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    priority    INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 10),
    status      TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    last_seq    INTEGER NOT NULL CHECK (last_seq >= 1)
) STRICT;

CREATE INDEX tasks_status_id ON tasks (status, id);
CREATE INDEX tasks_task_type_id ON tasks (task_type, id);
CREATE INDEX tasks_tenant_id ON tasks (tenant, id);
CREATE INDEX tasks_tenant_status_id ON tasks (tenant, status, id);

CREATE TABLE journal (
    task_id     TEXT    NOT NULL REFERENCES tasks (id),
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    recorded_at TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    event       TEXT    NOT NULL CHECK (json_valid(event)),
    PRIMARY KEY (task_id, seq)
) STRICT, WITHOUT ROWID;
