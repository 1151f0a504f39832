-- Parking and commands (issue 14). A task that waits for an approval holds no lease: its
-- worker releases the lease with `parked_until` set to the approval's deadline, and claims
-- skip the task until then, unless a command for it is pending (a vote or a cancel wakes it).
-- The next claim clears the mark.
ALTER TABLE task_leases ADD COLUMN parked_until TIMESTAMPTZ;

-- Votes and cancels for a task, recorded by the API process that received them and applied
-- by the worker holding the task's lease (the only writer of its journal), which records the
-- outcome here for the API process waiting on it. Every insert and every outcome is also
-- signalled with pg_notify on the channel `amas_commands` (`task:<task id>/<schema>`,
-- `done:<command id>/<schema>`); the table, not the signal, is what counts. `body` is cleared once the
-- command is done: what it carried is in the journal if it was applied.
CREATE TABLE task_commands (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     UUID        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    kind        TEXT        NOT NULL CHECK (kind IN ('vote', 'cancel')),
    body        JSONB,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    done_at     TIMESTAMPTZ,
    outcome     JSONB,
    CHECK ((done_at IS NULL) = (outcome IS NULL))
);

-- What workers and claims look for: the pending commands of a task.
CREATE INDEX task_commands_pending ON task_commands (task_id, id) WHERE done_at IS NULL;
