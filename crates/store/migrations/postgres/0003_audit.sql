-- The audit log: append-only and hash-chained (docs/audit.md). Separate from the journal.
-- seq is the record id: 1, 2, 3, ... without gaps. JSON columns hold canonical JSON as TEXT
-- (escapes keep NUL out), hashed exactly as stored.
-- (Version 0002 belongs to the approvals store; sqlx applies migrations by version whatever
-- order they arrive in.)

CREATE TABLE audit_log (
    seq             BIGINT      NOT NULL PRIMARY KEY CHECK (seq >= 1),
    recorded_at     TIMESTAMPTZ NOT NULL,
    tenant          TEXT        NOT NULL,
    principal_sub   TEXT        NOT NULL,
    principal_roles TEXT        NOT NULL,
    auth_method     TEXT        NOT NULL,
    stage           TEXT        NOT NULL,
    action          TEXT        NOT NULL,
    decision        TEXT        NOT NULL,
    reasons         TEXT        NOT NULL,
    agent           TEXT,
    task_id         UUID,
    step            TEXT,
    trace_id        TEXT,
    resource        TEXT,
    policy_version  TEXT,
    policy_hash     TEXT,
    classification  TEXT,
    duration_us     BIGINT,
    input_tokens    BIGINT,
    output_tokens   BIGINT,
    cost_micros     BIGINT,
    -- NULL once a retention purge erased it; details_hash stays and is what the hash covers.
    details         TEXT,
    details_hash    TEXT        NOT NULL,
    prev_hash       TEXT        NOT NULL,
    hash            TEXT        NOT NULL
);

CREATE INDEX audit_log_recorded_at ON audit_log (recorded_at);
CREATE INDEX audit_log_tenant ON audit_log (tenant, seq);
CREATE INDEX audit_log_task ON audit_log (task_id, seq) WHERE task_id IS NOT NULL;
CREATE INDEX audit_log_trace ON audit_log (trace_id, seq) WHERE trace_id IS NOT NULL;
CREATE INDEX audit_log_principal ON audit_log (principal_sub, seq);
CREATE INDEX audit_log_decision ON audit_log (decision, seq);

-- Append-only inside AMAS: no deletes, and the one update allowed is erasing details.
-- (A superuser can disable this; the hash chain and checkpoints catch that.)
CREATE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'the audit log is append-only';
    END IF;
    IF NEW.details IS NOT NULL
       OR (to_jsonb(NEW) - 'details') IS DISTINCT FROM (to_jsonb(OLD) - 'details') THEN
        RAISE EXCEPTION 'the audit log is append-only; only details may be erased';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_log_guard BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard();

-- Signed statements "record up_to_seq has hash H".
CREATE TABLE audit_checkpoints (
    up_to_seq   BIGINT      NOT NULL CHECK (up_to_seq >= 1),
    key_id      TEXT        NOT NULL,
    hash        TEXT        NOT NULL,
    signed_at   TIMESTAMPTZ NOT NULL,
    signature   TEXT        NOT NULL,
    PRIMARY KEY (up_to_seq, key_id)
);

CREATE FUNCTION audit_checkpoints_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit checkpoints are append-only';
END;
$$;

CREATE TRIGGER audit_checkpoints_guard BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_guard();
