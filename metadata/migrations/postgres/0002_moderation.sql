-- Isoplane metadata, PostgreSQL schema: moderation inside Isoplane. Keep in step with
-- ../sqlite/0002_moderation.sql: the same tables, columns and meanings; only the column
-- types are spelled per engine.
-- Times are seconds since the Unix epoch. Flags are 0 or 1 in an integer column, which
-- sqlx's Any driver reads the same way on both engines.

-- What came of an action, and its particulars beside target and reason.
ALTER TABLE audit_log ADD COLUMN outcome TEXT NOT NULL DEFAULT 'done';  -- done, refused or failed
ALTER TABLE audit_log ADD COLUMN detail TEXT NOT NULL DEFAULT '';       -- e.g. "audio", "capacity 4", "world demo"

-- Users demoted inside Isoplane: a join token saying `role: admin` no longer makes them
-- admin. Promoting the user again deletes the row.
CREATE TABLE admin_demotions (
    workspace TEXT NOT NULL REFERENCES workspaces(name),
    user_id TEXT NOT NULL,
    demoted_by TEXT NOT NULL,
    demoted_at BIGINT NOT NULL,
    PRIMARY KEY (workspace, user_id)
);

-- Media a moderator turned off for a user; no row: nothing muted.
CREATE TABLE mutes (
    workspace TEXT NOT NULL REFERENCES workspaces(name),
    user_id TEXT NOT NULL,
    audio BIGINT NOT NULL,                -- 1: microphone muted
    video BIGINT NOT NULL,                -- 1: camera muted
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workspace, user_id)
);

-- Zone settings changed inside Isoplane; no row: the world file's own.
CREATE TABLE zone_settings (
    workspace TEXT NOT NULL REFERENCES workspaces(name),
    world TEXT NOT NULL,
    zone TEXT NOT NULL,
    locked BIGINT NOT NULL,               -- 1: the zone is locked
    capacity BIGINT,                      -- NULL: the world file's own
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (workspace, world, zone)
);
