-- The outbox's storage. docs/storage.md is the protocol, docs/state-machine.md
-- the life of one message.
--
-- * outbox.log: every message enqueue writes, once. Never updated, never
--   deleted row by row: segments are truncated whole (rotation). Read through
--   outbox.partitions' snapshot windows.
-- * outbox.side: messages off the happy path (retrying, scheduled, released,
--   diverted behind a busy key, requeued), with per-message leases. This is
--   0.1.0's outbox.messages table, renamed.
-- * outbox.dead_letters: messages that failed for good.
-- * outbox.messages: a view of every unfinished message, wherever it is.
-- Never UNLOGGED: a crash must not lose committed messages.

-- One id sequence for every message, wherever it lives: a message keeps its
-- id from the log to the side table, the dead letters and back (consumers
-- deduplicate on it). CACHE 1 (the default) is required: a claim reads
-- last_value as "every id issued so far" (docs/storage.md, the fresh branch).
CREATE SEQUENCE outbox.message_id AS bigint CACHE 1;

-- The log's layout, in one sequence value v (outbox.log_segment's last_value):
-- the segment producers write is v % 3, the number of partitions is
-- v / 3221225472 (3 * 2^30; a multiple of 3, so the count never changes the
-- segment). A sequence, not a row, because producers must see a switch at
-- once, whatever their snapshot (a REPEATABLE READ producer reading a row
-- would keep writing a sealed segment); see outbox._rotate in rotation.sql.
-- One value, so a producer reads the segment and the partition count in one
-- atomic read, at no cost over reading the segment alone. A switch is
-- nextval() (v + 1); outbox.set_partitions() is the only setval().
CREATE SEQUENCE outbox.log_segment AS bigint MINVALUE 0 START 0 CACHE 1;
-- Marked as called: 16 partitions, segment 0; the first switch's nextval()
-- is segment 1.
SELECT pg_catalog.setval('outbox.log_segment', 16 * 3221225472, true);

-- Why the shape:
-- * part: hashtextextended(key, 0) (a stable hash) for keyed messages, the id
--   for keyless ones, modulo the number of partitions; one relay reads a
--   partition at a time, so a key's messages are read in order.
-- * xid: the producing transaction, assigned before the id is taken (see
--   queries/enqueue.sql): windows are "transactions committed between two
--   snapshots", and the fresh branch's id bound relies on xid-before-id.
-- * (part, id) serves the window's fresh branch, read in id order;
--   (part, xid, id) its late branch (transactions open when the window
--   began), per transaction in id order. No primary key: ids are unique by
--   the sequence, and nothing looks a row up by id alone.
CREATE TABLE outbox.log (
    seg          smallint    NOT NULL,
    part         smallint    NOT NULL,
    xid          xid8        NOT NULL,
    id           bigint      NOT NULL,
    topic        text        NOT NULL,
    key          text,
    payload      jsonb       NOT NULL,
    headers      jsonb,
    created_at   timestamptz NOT NULL,
    deliver_at   timestamptz NOT NULL,
    max_attempts integer     NOT NULL
) PARTITION BY LIST (seg);

CREATE TABLE outbox.log_0 PARTITION OF outbox.log FOR VALUES IN (0)
    WITH (autovacuum_enabled = false);
CREATE TABLE outbox.log_1 PARTITION OF outbox.log FOR VALUES IN (1)
    WITH (autovacuum_enabled = false);
CREATE TABLE outbox.log_2 PARTITION OF outbox.log FOR VALUES IN (2)
    WITH (autovacuum_enabled = false);
CREATE INDEX log_part_id ON outbox.log (part, id);
CREATE INDEX log_part_xid_id ON outbox.log (part, xid, id);

COMMENT ON TABLE outbox.log IS
    'Every enqueued message, written once; read through outbox.partitions, truncated by segment. Write through outbox.enqueue().';

-- One row per partition: its window, the cursor in it, at most one batch
-- lease, and the messages read but deferred: a batch never holds two
-- messages of one key, so a later one of a key already in the batch waits
-- in `deferred` (read, not yet handed out) for the partition's next batch. See docs/storage.md ("Partitions and windows"). Updated by
-- every claim and settle, so fillfactor leaves room for HOT updates.
CREATE TABLE outbox.partitions (
    part             smallint    NOT NULL,
    snap_lo          pg_snapshot NOT NULL,
    snap_hi          pg_snapshot NOT NULL,
    id_lo            bigint      NOT NULL,
    xid_lo           xid8        NOT NULL,
    id_hi            bigint      NOT NULL,
    late             xid8[]      NOT NULL DEFAULT '{}',
    next_id_lo       bigint      NOT NULL,
    next_xid_lo      xid8        NOT NULL,
    cursor_id        bigint      NOT NULL DEFAULT 0,
    window_done      boolean     NOT NULL DEFAULT true,
    lease_owner      text,
    lease_token      uuid,
    lease_expires_at timestamptz,
    batch            bigint[]    NOT NULL DEFAULT '{}',
    batch_end        bigint      NOT NULL DEFAULT 0,
    deferred         bigint[]    NOT NULL DEFAULT '{}',
    claimed_at       timestamptz,
    CONSTRAINT partitions_pkey PRIMARY KEY (part),
    CONSTRAINT part_is_not_negative CHECK (part >= 0),
    CONSTRAINT partition_lease_token_and_expiry_go_together
        CHECK ((lease_token IS NULL) = (lease_expires_at IS NULL)),
    CONSTRAINT partition_batch_is_leased
        CHECK (cardinality(batch) = 0 OR lease_token IS NOT NULL)
) WITH (fillfactor = 20);

-- batch and deferred hold up to batch_size ids (8 KB for 1000), rewritten by
-- every claim: pglz compressing them was a sixth of a claim's own work
-- (perf). lz4 does it in a fraction of that where the server has it; a
-- server built without lz4 keeps the default.
DO $$
BEGIN
    ALTER TABLE outbox.partitions
        ALTER COLUMN batch SET COMPRESSION lz4,
        ALTER COLUMN deferred SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END;
$$;

COMMENT ON TABLE outbox.partitions IS
    'One row per log partition: its snapshot window, cursor and batch lease (docs/storage.md).';

-- No rows here: outbox._rotate() (rotation.sql) creates them on the first
-- claim. An install script that inserted them would clash with a dump's
-- copy of the table on restore (pg_extension_config_dump below).

-- The segments' rotation state. A segment other than the current one is
-- 'sealed' (with the next xid read after the switch: every transaction that
-- could still write it has an xid below) until it is truncated ('empty').
CREATE TABLE outbox.segments (
    seg        smallint    NOT NULL,
    state      text        NOT NULL,
    sealed_xid xid8,
    since      timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),
    CONSTRAINT segments_pkey PRIMARY KEY (seg),
    CONSTRAINT segment_state_is_known CHECK (state IN ('current', 'sealed', 'empty')),
    CONSTRAINT sealed_segment_has_xid CHECK ((state = 'sealed') = (sealed_xid IS NOT NULL))
);

-- Rows created by outbox._rotate(), as for outbox.partitions.

COMMENT ON TABLE outbox.segments IS
    'Rotation state of the log segments outbox.log_0 .. log_2 (see outbox.rotate()).';

-- The side table (0.1.0's outbox.messages). Why the shape:
-- * Only `id` (primary key) and `(key, id)` are indexed. claim() changes
--   attempt and the lease columns, none of them indexed, so its updates can be
--   HOT while the row's page has room; fillfactor 80 leaves room for some.
-- * No id default: every row arrives with its id, from the log or the dead
--   letters.
-- * `(key, id)` also answers the log claim's question "does this key have a
--   message here?" (a diverted message waits behind it).
CREATE TABLE outbox.side (
    id               bigint      NOT NULL,
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
    CONSTRAINT side_pkey PRIMARY KEY (id),
    CONSTRAINT attempt_is_not_negative CHECK (attempt >= 0),
    CONSTRAINT max_attempts_is_positive CHECK (max_attempts > 0),
    CONSTRAINT lease_token_and_expiry_go_together
        CHECK ((lease_token IS NULL) = (lease_expires_at IS NULL))
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);

COMMENT ON TABLE outbox.side IS
    'Unfinished messages off the log''s happy path (retrying, scheduled, released, diverted, requeued), with per-message leases.';

CREATE INDEX side_key_id ON outbox.side (key, id) WHERE key IS NOT NULL;

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
SELECT pg_catalog.pg_extension_config_dump('outbox.side', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.message_id', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.log_0', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.log_1', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.log_2', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.partitions', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.segments', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.log_segment', '');

-- A snapshot as a window must take it: pg_current_snapshot() with the
-- current transaction's own xid, if it has one, listed as running. A
-- snapshot never lists its own transaction, so pg_visible_in_snapshot()
-- counts it as committed once any later transaction has ended; a window
-- opened by a claim in a transaction that already had an xid then counted
-- the messages that transaction enqueued after the claim as covered, and
-- they were never delivered (tests/tests/it/claim.rs,
-- a_transaction_that_claims_then_enqueues_loses_nothing).
-- Without a SET clause, on purpose: a function's SET clause is applied and
-- undone on every call (on PG15 that walks every GUC), and this one is
-- called once per window statement; with the clause, the late list and the
-- idle advance called it per candidate row, 0.15 ms a time (EXPLAIN
-- ANALYZE). Every name in it is schema-qualified, only the owner may
-- execute it, and its callers pin their search_path (tests/tests/security/
-- shadowing.rs, UNPINNED_BODIES).
-- PL/pgSQL, not SQL: a SQL function that cannot be inlined (this one has a
-- FROM) is parsed and planned again in every statement that calls it, and
-- that was most of a window opening: 0.49 ms per statement against 0.10 ms
-- for this body, whose plans PL/pgSQL keeps for the session (pgbench -M
-- prepared, one statement calling it).
CREATE FUNCTION outbox._window_snapshot(s pg_snapshot) RETURNS pg_snapshot
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
AS $$
DECLARE
    x pg_catalog.xid8 := pg_catalog.pg_current_xact_id_if_assigned();
BEGIN
    IF x IS NULL OR x OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmax(s) THEN
        RETURN s;
    END IF;
    RETURN CAST(pg_catalog.concat(least(pg_catalog.pg_snapshot_xmin(s), x), ':',
                                  pg_catalog.pg_snapshot_xmax(s), ':',
                                  pg_catalog.array_to_string(
                                      ARRAY(SELECT u.y
                                            FROM (SELECT pg_catalog.pg_snapshot_xip(s) AS y
                                                  UNION SELECT x) AS u
                                            ORDER BY u.y), ','))
                AS pg_catalog.pg_snapshot);
END;
$$;
