-- Checkpoints also sign the Merkle root of the record hashes up to them (docs/audit.md), so a
-- record can be proven against a checkpoint without the records around it. NULL on
-- checkpoints signed before (version 1).
ALTER TABLE audit_checkpoints ADD COLUMN tree_root TEXT;
