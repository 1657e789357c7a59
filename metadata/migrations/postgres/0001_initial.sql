-- Isoplane asset server, PostgreSQL schema. Keep in step with ../sqlite/0001_initial.sql:
-- the same tables, columns and meanings; only the column types are spelled per engine.
-- Times are seconds since the Unix epoch.

CREATE TABLE assets (
    id TEXT PRIMARY KEY NOT NULL,          -- sha256-… content ID
    size BIGINT NOT NULL,
    media_type TEXT NOT NULL,
    workspace TEXT NOT NULL,               -- workspace of the first upload
    uploaded_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE workspaces (
    name TEXT PRIMARY KEY NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE admins (
    workspace TEXT NOT NULL REFERENCES workspaces(name),
    user_id TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (workspace, user_id)
);

CREATE TABLE worlds (
    workspace TEXT NOT NULL REFERENCES workspaces(name),
    name TEXT NOT NULL,
    current_version BIGINT NOT NULL,      -- 0: no version yet
    latest_version BIGINT NOT NULL,       -- highest version number handed out
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workspace, name)
);

CREATE TABLE world_versions (
    workspace TEXT NOT NULL,
    world TEXT NOT NULL,
    version BIGINT NOT NULL,
    content_id TEXT NOT NULL REFERENCES assets(id),
    parent_version BIGINT NOT NULL,       -- 0: first version
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workspace, world, version),
    FOREIGN KEY (workspace, world) REFERENCES worlds(workspace, name)
);

CREATE TABLE bans (
    workspace TEXT NOT NULL REFERENCES workspaces(name),
    user_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,                    -- NULL: until lifted
    PRIMARY KEY (workspace, user_id)
);

CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX audit_log_by_workspace ON audit_log (workspace, id);
