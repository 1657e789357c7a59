-- Isoplane metadata, PostgreSQL schema: finding recent actions of one kind. Keep in step with
-- ../sqlite/0003_audit_by_action.sql.

-- Signaling re-reads the recent kicks every `moderation.recheck_seconds` to remove users a
-- kick missed (Metadata::actions_since); this keeps that a range read, however long the log.
CREATE INDEX audit_log_by_action ON audit_log (workspace, action, created_at);
