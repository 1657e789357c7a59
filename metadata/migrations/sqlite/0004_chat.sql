-- Isoplane metadata, SQLite schema: text chat. Keep in step with ../postgres/0004_chat.sql:
-- the same tables, columns and meanings; only the column types are spelled per engine.

-- An admin muted the user's chat: 1, nothing they write is sent (beside audio and video).
ALTER TABLE mutes ADD COLUMN chat INTEGER NOT NULL DEFAULT 0;

-- Chat messages of the last day, as signaling delivered them; the history a client reads
-- after joining and on each zone change. Rows older than a day are pruned. IDs are made
-- by signaling (time first, so they sort by time) and are unique within a world.
CREATE TABLE chat_messages (
    workspace TEXT NOT NULL,
    world TEXT NOT NULL,
    id TEXT NOT NULL,
    scope TEXT NOT NULL,                  -- zone, world or direct
    zone TEXT,                            -- the zone's ID, for scope zone only
    from_user TEXT NOT NULL,
    from_name TEXT NOT NULL,
    to_user TEXT,                         -- for scope direct only
    to_name TEXT,
    text TEXT NOT NULL,                   -- verbatim, as the author wrote it
    sent_at INTEGER NOT NULL,                -- milliseconds since the Unix epoch
    deleted_at INTEGER,                      -- milliseconds; NULL: not deleted by an admin
    PRIMARY KEY (workspace, world, id)
);

-- Reading a world's recent history at start, and pruning by age.
CREATE INDEX chat_messages_by_world ON chat_messages (workspace, world, sent_at);
CREATE INDEX chat_messages_by_age ON chat_messages (sent_at);
