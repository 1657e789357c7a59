-- Isoplane metadata, SQLite schema: ingest keys. Keep in step with ../postgres/0005_ingest_keys.sql:
-- the same tables, columns and meanings; only the column types are spelled per engine.

-- A key a broadcaster (OBS, any WHIP client) publishes to one stage zone with. Only the
-- key's SHA-256 is kept: the key itself is shown once, to the admin who made it.
CREATE TABLE ingest_keys (
    workspace TEXT NOT NULL REFERENCES workspaces (name),
    id TEXT NOT NULL,                     -- public: names the key in listings and the audit log
    key_hash TEXT NOT NULL,               -- hex SHA-256 of the whole key
    world TEXT NOT NULL,
    zone TEXT NOT NULL,
    name TEXT NOT NULL,                   -- what listeners see the stream as
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,               -- seconds since the Unix epoch
    revoked_at INTEGER,                        -- seconds; NULL: in force
    PRIMARY KEY (workspace, id)
);

CREATE UNIQUE INDEX ingest_keys_by_hash ON ingest_keys (key_hash);
