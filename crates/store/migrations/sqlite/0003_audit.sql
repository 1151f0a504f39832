-- The audit log: append-only and hash-chained (docs/audit.md). Separate from the journal.
-- seq is the record id: 1, 2, 3, ... without gaps. Timestamps are fixed-width RFC 3339 UTC
-- text with microseconds; JSON columns hold canonical JSON text.
-- (Version 0002 belongs to the approvals store; sqlx applies migrations by version whatever
-- order they arrive in.)

CREATE TABLE audit_log (
    seq             INTEGER NOT NULL PRIMARY KEY CHECK (seq >= 1),
    recorded_at     TEXT    NOT NULL,
    tenant          TEXT    NOT NULL,
    principal_sub   TEXT    NOT NULL,
    principal_roles TEXT    NOT NULL,
    auth_method     TEXT    NOT NULL,
    stage           TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    decision        TEXT    NOT NULL,
    reasons         TEXT    NOT NULL,
    agent           TEXT,
    task_id         TEXT,
    step            TEXT,
    trace_id        TEXT,
    resource        TEXT,
    policy_version  TEXT,
    policy_hash     TEXT,
    classification  TEXT,
    duration_us     INTEGER,
    input_tokens    INTEGER,
    output_tokens   INTEGER,
    cost_micros     INTEGER,
    -- NULL once a retention purge erased it; details_hash stays and is what the hash covers.
    details         TEXT,
    details_hash    TEXT    NOT NULL,
    prev_hash       TEXT    NOT NULL,
    hash            TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_log_recorded_at ON audit_log (recorded_at);
CREATE INDEX audit_log_tenant ON audit_log (tenant, seq);
CREATE INDEX audit_log_task ON audit_log (task_id, seq) WHERE task_id IS NOT NULL;
CREATE INDEX audit_log_trace ON audit_log (trace_id, seq) WHERE trace_id IS NOT NULL;
CREATE INDEX audit_log_principal ON audit_log (principal_sub, seq);
CREATE INDEX audit_log_decision ON audit_log (decision, seq);

-- Append-only inside AMAS: no deletes, and the one update allowed is erasing details.
-- (Someone with the file can drop these; the hash chain and checkpoints catch that.)
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_log_only_redact BEFORE UPDATE ON audit_log
WHEN NEW.details IS NOT NULL
  OR (NEW.seq, NEW.recorded_at, NEW.tenant, NEW.principal_sub, NEW.principal_roles,
      NEW.auth_method, NEW.stage, NEW.action, NEW.decision, NEW.reasons, NEW.agent, NEW.task_id,
      NEW.step, NEW.trace_id, NEW.resource, NEW.policy_version, NEW.policy_hash,
      NEW.classification, NEW.duration_us, NEW.input_tokens, NEW.output_tokens, NEW.cost_micros,
      NEW.details_hash, NEW.prev_hash, NEW.hash)
     IS NOT
     (OLD.seq, OLD.recorded_at, OLD.tenant, OLD.principal_sub, OLD.principal_roles,
      OLD.auth_method, OLD.stage, OLD.action, OLD.decision, OLD.reasons, OLD.agent, OLD.task_id,
      OLD.step, OLD.trace_id, OLD.resource, OLD.policy_version, OLD.policy_hash,
      OLD.classification, OLD.duration_us, OLD.input_tokens, OLD.output_tokens, OLD.cost_micros,
      OLD.details_hash, OLD.prev_hash, OLD.hash)
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only; only details may be erased');
END;

-- Signed statements "record up_to_seq has hash H".
CREATE TABLE audit_checkpoints (
    up_to_seq   INTEGER NOT NULL CHECK (up_to_seq >= 1),
    key_id      TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    signed_at   TEXT    NOT NULL,
    signature   TEXT    NOT NULL,
    PRIMARY KEY (up_to_seq, key_id)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;

CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
