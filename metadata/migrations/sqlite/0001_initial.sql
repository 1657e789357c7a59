-- Isoplane asset server, SQLite schema. Keep in step with ../postgres/0001_initial.sql:
-- the same tables, columns and meanings; only the column types are spelled per engine.
-- Times are seconds since the Unix epoch.

CREATE TABLE assets (
    id TEXT PRIMARY KEY NOT NULL,          -- sha256-… content ID
    size INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    workspace TEXT NOT NULL,               -- workspace of the first upload
    uploaded_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE workspaces (
    name TEXT PRIMARY KEY NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE admins (
    workspace TEXT NOT NULL REFERENCES workspaces(name),
    user_id TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (workspace, user_id)
);

CREATE TABLE worlds (
    workspace TEXT NOT NULL REFERENCES workspaces(name),
    name TEXT NOT NULL,
    current_version INTEGER NOT NULL,      -- 0: no version yet
    latest_version INTEGER NOT NULL,       -- highest version number handed out
    created_at INTEGER NOT NULL,
    PRIMARY KEY (workspace, name)
);

CREATE TABLE world_versions (
    workspace TEXT NOT NULL,
    world TEXT NOT NULL,
    version INTEGER NOT NULL,
    content_id TEXT NOT NULL REFERENCES assets(id),
    parent_version INTEGER NOT NULL,       -- 0: first version
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (workspace, world, version),
    FOREIGN KEY (workspace, world) REFERENCES worlds(workspace, name)
);

CREATE TABLE bans (
    workspace TEXT NOT NULL REFERENCES workspaces(name),
    user_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,                    -- NULL: until lifted
    PRIMARY KEY (workspace, user_id)
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX audit_log_by_workspace ON audit_log (workspace, id);
