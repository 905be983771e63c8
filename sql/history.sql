-- The published-message history (docs/sql-api.md, "Retention").
--
-- Off by default. With outbox.retention set (ALTER DATABASE ... SET
-- outbox.retention = '24h'; superusers only, so every session of a database
-- sees the same value), complete and complete_batch copy what they finish
-- here: the message, when it was published, after how many attempts and by
-- which relay (its lease owner). cleanup() removes rows older than the
-- retention, in bounded batches.
--
-- Why the shape:
-- * A table of its own, written only when retention is on: the log settles
--   whole batches by moving a cursor and keeps no per-message state, and
--   its segments are truncated by rotation, so history cannot live there.
--   With retention off, complete runs exactly the statements it ran before
--   (api/settle.rs): the feature costs nothing.
-- * id is the primary key (get_message, list_messages' keyset pagination);
--   published_at is indexed for cleanup, which deletes the oldest first.
-- * Deleted in batches of cleanup's max_rows, never all at once: short
--   transactions, no long locks, and autovacuum (tuned below like the side
--   table's) reuses the space, so the table stays about one retention long.
CREATE TABLE outbox.published (
    id           bigint      NOT NULL,
    topic        text        NOT NULL,
    key          text,
    payload      jsonb       NOT NULL,
    headers      jsonb,
    created_at   timestamptz NOT NULL,
    published_at timestamptz NOT NULL,
    attempts     integer     NOT NULL,
    published_by text,
    CONSTRAINT published_pkey PRIMARY KEY (id)
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);

CREATE INDEX published_published_at ON outbox.published (published_at);

COMMENT ON TABLE outbox.published IS
    'Published messages, kept for outbox.retention (off by default) and removed by outbox.cleanup().';

SELECT pg_catalog.pg_extension_config_dump('outbox.published', '');
