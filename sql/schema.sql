-- The outbox's two tables. Read docs/state-machine.md for the lifecycle.
--
-- outbox.messages is the hot table: every message that is not finished lives
-- here, whether ready, scheduled (future deliver_at or a retry), or leased.
-- Finished messages are deleted at once and dead ones move to
-- outbox.dead_letters, so claim scans stay short and autovacuum keeps up.
--
-- Why the shape:
-- * Only `id` (primary key) and `(key, id)` are indexed. claim() changes
--   attempt and the lease columns, none of them indexed, so its updates can be
--   HOT (no new index entries) while the row's page has room for the new
--   version. Fillfactor 80 leaves room for some: draining a 100k backlog in
--   claims of 1000, 23% of the claims' updates were HOT (fillfactor 50: 91%,
--   and claims 27% faster, but single-row enqueue 13% slower and the table
--   1.6x larger; enqueue is the producer's path, so 80 it is).
-- * Never UNLOGGED: a crash must not lose committed messages.
-- * The identity column is GENERATED ALWAYS so ids come from one sequence; a
--   requeued dead letter keeps its id (OVERRIDING SYSTEM VALUE), which keeps
--   broker-side deduplication on the message id meaningful.
CREATE TABLE outbox.messages (
    id               bigint      GENERATED ALWAYS AS IDENTITY,
    topic            text        NOT NULL,
    key              text,
    payload          jsonb       NOT NULL,
    headers          jsonb,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),
    deliver_at       timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),
    attempt          integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL,
    lease_owner      text,
    lease_token      uuid,
    lease_expires_at timestamptz,
    last_error       text,
    CONSTRAINT messages_pkey PRIMARY KEY (id),
    CONSTRAINT attempt_is_not_negative CHECK (attempt >= 0),
    CONSTRAINT max_attempts_is_positive CHECK (max_attempts > 0),
    CONSTRAINT lease_token_and_expiry_go_together
        CHECK ((lease_token IS NULL) = (lease_expires_at IS NULL))
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);

COMMENT ON TABLE outbox.messages IS
    'Unfinished outbox messages (ready, scheduled, leased). Write through outbox.enqueue().';

-- Per-key FIFO: claim asks "is there an older message with this key?" for
-- each candidate; this index answers it with one probe.
CREATE INDEX messages_key_id ON outbox.messages (key, id) WHERE key IS NOT NULL;

CREATE TABLE outbox.dead_letters (
    id           bigint      NOT NULL,
    topic        text        NOT NULL,
    key          text,
    payload      jsonb       NOT NULL,
    headers      jsonb,
    created_at   timestamptz NOT NULL,
    attempts     integer     NOT NULL,
    max_attempts integer     NOT NULL,
    last_error   text,
    reason       text        NOT NULL,
    died_at      timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),
    CONSTRAINT dead_letters_pkey PRIMARY KEY (id),
    CONSTRAINT reason_is_known CHECK (reason IN ('permanent', 'max_attempts', 'lease_expired'))
);

COMMENT ON TABLE outbox.dead_letters IS
    'Messages that failed permanently or ran out of attempts. See outbox.requeue_dead() and outbox.purge_dead().';

CREATE INDEX dead_letters_topic_id ON outbox.dead_letters (topic, id);

-- pg_dump skips the contents of extension tables unless they are marked as
-- configuration; an outbox whose backlog vanished on dump/restore would lose
-- messages.
SELECT pg_catalog.pg_extension_config_dump('outbox.messages', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.messages_id_seq', '');
