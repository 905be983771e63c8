-- outbox 0.1.0 -> 0.2.0: the insert-only log (docs/storage.md).
--
-- Frozen once released, like every install and upgrade script
-- (docs/upgrading.md). What it does:
-- * 0.1.0's outbox.messages becomes the side table outbox.side, rows and
--   leases untouched: every message stays exactly where and as it was, and
--   a leased one can still be finished with its token.
-- * Ids move from the identity sequence to outbox.message_id, continuing
--   where it stopped (a requeued dead letter keeps its id, so ids must never
--   repeat).
-- * The log, its partitions and segments are created empty; new enqueues go
--   there. outbox.messages is now a view of every unfinished message.
-- * Changed SQL functions are replaced; the Rust functions keep their
--   signatures (and their C symbols), so only the new one is created.
-- * Roles granted admin in 0.1.0 get SELECT on the new tables too.
-- The result equals a fresh 0.2.0 install (tests/tests/upgrade/ compares
-- the catalogs).

-- Ids: one sequence for every message, continuing from the identity's.
CREATE SEQUENCE outbox.message_id AS bigint CACHE 1;
SELECT pg_catalog.setval('outbox.message_id',
                         (SELECT s.last_value FROM outbox.messages_id_seq AS s),
                         (SELECT s.is_called FROM outbox.messages_id_seq AS s));
-- Out of the extension first, so its config-dump entry goes with it.
ALTER EXTENSION outbox DROP SEQUENCE outbox.messages_id_seq;
ALTER TABLE outbox.messages ALTER COLUMN id DROP IDENTITY;

-- The side table is 0.1.0's messages table.
ALTER TABLE outbox.messages RENAME TO side;
ALTER TABLE outbox.side RENAME CONSTRAINT messages_pkey TO side_pkey;
ALTER INDEX outbox.messages_key_id RENAME TO side_key_id;
COMMENT ON TABLE outbox.side IS
    'Unfinished messages off the log''s happy path (retrying, scheduled, released, diverted, requeued), with per-message leases.';

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

SELECT pg_catalog.pg_extension_config_dump('outbox.message_id', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.log_0', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.log_1', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.log_2', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.partitions', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.segments', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.log_segment', '');

-- The next xid without taking one (api/rotation.rs), for rotation's seal.
CREATE FUNCTION outbox."_next_xid"() RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_next_xid_wrapper';

-- The doorbell rings for the log too (doorbell.sql).
CREATE TRIGGER doorbell
    AFTER INSERT ON outbox.log
    FOR EACH STATEMENT
    EXECUTE FUNCTION outbox._doorbell();

-- outbox.messages: every unfinished message, wherever it is (docs/storage.md).
-- For admins (grant_admin gives SELECT) and tests; relays and producers use
-- the functions. Not on any hot path: it checks each log row against its
-- partition's window.
--
-- A log row is finished (consumed) when its transaction is visible in its
-- partition's snap_lo (an earlier window, all handed out), or it is in the
-- current window at or below batch_end and not in the leased batch (handed
-- out and settled, or diverted to the side table). Everything else in the
-- log is unfinished: in the leased batch (leased, attempt 1), deferred to
-- the partition's next batch, or not yet read (attempt 0). Rows of transactions still running are not visible here
-- at all, as everywhere.
CREATE VIEW outbox.messages AS
SELECT l.id, l.topic, l.key, l.payload, l.headers, l.created_at, l.deliver_at,
       CASE WHEN l.id = ANY (p.batch) THEN 1 ELSE 0 END AS attempt,
       l.max_attempts,
       CASE WHEN l.id = ANY (p.batch) THEN p.lease_owner END AS lease_owner,
       CASE WHEN l.id = ANY (p.batch) THEN p.lease_token END AS lease_token,
       CASE WHEN l.id = ANY (p.batch) THEN p.lease_expires_at END AS lease_expires_at,
       NULL::text AS last_error,
       'log'::text AS place
FROM outbox.log AS l
-- LEFT: before the first claim the partition rows do not exist yet (nor,
-- for a moment, after set_partitions() raised the count).
LEFT JOIN outbox.partitions AS p ON p.part = l.part
WHERE p.part IS NULL
   OR l.id = ANY (p.deferred)
   -- a batch can hold messages of an earlier window (handed out from
   -- deferred, or read before the claim opened the next window)
   OR l.id = ANY (p.batch)
   OR (NOT pg_catalog.pg_visible_in_snapshot(l.xid, p.snap_lo)
       AND NOT (pg_catalog.pg_visible_in_snapshot(l.xid, p.snap_hi)
                AND l.id <= p.batch_end
                AND l.id <> ALL (p.batch)))
UNION ALL
SELECT s.id, s.topic, s.key, s.payload, s.headers, s.created_at, s.deliver_at, s.attempt,
       s.max_attempts, s.lease_owner, s.lease_token, s.lease_expires_at, s.last_error,
       'side'::text
FROM outbox.side AS s;

COMMENT ON VIEW outbox.messages IS
    'Every unfinished message (ready, scheduled, retrying, leased), in the log or the side table. For looking, not writing.';

-- Rotation: the log's three segments (outbox.log_0 .. log_2) take writes in
-- turn and are emptied whole with TRUNCATE, so consumed messages leave
-- without a DELETE per message and without autovacuum (docs/storage.md,
-- "Rotation"). The segment producers write is outbox.log_segment's
-- last_value % 3: a sequence, so a switch is seen at once by every producer,
-- whatever its snapshot.
--
-- Why the rules:
-- * Seal after the switch: the switch bumps the sequence first and reads the
--   next xid after. A producer takes its xid before it reads the segment
--   (queries/enqueue.sql), so every transaction that can still write the old
--   segment has an xid below the seal.
-- * Truncate a sealed segment once (1) no transaction below the seal is still
--   running, and (2) every partition's window began after they all ended
--   (pg_snapshot_xmin(snap_lo) >= seal): everything they committed was in an
--   earlier window, and a partition opens a window only after the last
--   one's batch was settled or moved to the side table, and (3) no
--   partition holds a deferred or leased message of it. Nothing in the segment can
--   still be handed out.
-- * The sequence is the truth about which segment is current: a switch whose
--   transaction rolled back still moved producers (sequences are not
--   transactional), so the first step re-reads it and seals whatever
--   producers left.
-- * TRUNCATE needs an ACCESS EXCLUSIVE lock on that segment only; producers
--   write another one and never wait. Claims reading the log do wait, so the
--   lock is tried for at most 50 ms and rotation tries again later rather
--   than queue claims behind it.
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

CREATE FUNCTION outbox._rotate() RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cur smallint;
    parts integer;
    sealed record;
    unplanned record;
    idle smallint[];
    now_ timestamptz := outbox._now();
    every interval := current_setting('outbox.rotation_interval')::interval;
    caller_lock_timeout text := current_setting('lock_timeout');
BEGIN
    -- The bookkeeping rows, on first use (schema.sql says why not at
    -- install). A partition's first window starts at "nothing committed
    -- yet": '1:1:' sees no transaction, id 0 and xid 0 bound nothing.
    -- Looked up first: an INSERT ... ON CONFLICT waits for any transaction
    -- that has a partition row updated and not yet committed (a relay's
    -- open complete), so it runs only while rows are missing. Rows are
    -- never removed (set_partitions says why), so they are always
    -- 0 .. the highest count ever, and the last one's probe is enough; a
    -- missing row never had a message consumed, so its window starts from
    -- the beginning.
    SELECT (s.last_value / 3221225472)::integer INTO parts FROM outbox.log_segment AS s;
    PERFORM 1 FROM outbox.partitions AS p WHERE p.part = parts - 1;
    IF NOT FOUND THEN
        INSERT INTO outbox.partitions
            (part, snap_lo, snap_hi, id_lo, xid_lo, id_hi, next_id_lo, next_xid_lo)
        SELECT p, '1:1:', '1:1:', 0, '0', 0, 0, '0'
        FROM generate_series(0, parts - 1) AS p
        ON CONFLICT ON CONSTRAINT partitions_pkey DO NOTHING;
        -- Statistics for the rows just made: a VACUUM of the table while it
        -- was empty left it counted as empty, and the claims planned on
        -- that probed the log linearly (partitions_with_work.sql from 0.2
        -- to 2 ms and rising for the first 30 s at 4000 msg/s, until
        -- autovacuum's ANALYZE replanned them).
        ANALYZE outbox.partitions;
    END IF;
    IF (SELECT count(*) FROM outbox.segments) < 3 THEN
        INSERT INTO outbox.segments (seg, state)
        VALUES (0, 'current'), (1, 'empty'), (2, 'empty')
        ON CONFLICT ON CONSTRAINT segments_pkey DO NOTHING;
    END IF;
    -- Serialise rotations on segment 0's row; a claim that finds one
    -- running just goes on.
    PERFORM 1 FROM outbox.segments AS g WHERE g.seg = 0 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- Idle partitions: a claim skips a partition with nothing new, so its
    -- window would never move and its snap_lo would hold back truncation.
    -- Their next (empty) window is opened here instead: lock them without
    -- waiting, then, in a second statement with a fresh snapshot, open the
    -- window (old snap_hi, now] only if still nothing of theirs is beyond
    -- snap_hi. The previous opening's id/xid bounds are kept: an older
    -- pair is still a valid pair (docs/storage.md), just less tight. Only at
    -- READ COMMITTED, where each statement's snapshot is fresh.
    IF current_setting('transaction_isolation') = 'read committed' THEN
        SELECT array_agg(i.part) INTO idle
        FROM (SELECT p.part FROM outbox.partitions AS p
              WHERE p.lease_token IS NULL AND p.window_done
              FOR UPDATE SKIP LOCKED) AS i;
        UPDATE outbox.partitions AS p
        SET snap_lo = p.snap_hi,
            id_lo = p.next_id_lo,
            xid_lo = p.next_xid_lo,
            snap_hi = w.snap,
            id_hi = (SELECT CASE WHEN q.is_called THEN q.last_value ELSE 0 END FROM outbox.message_id AS q),
            late = '{}',
            cursor_id = 0,
            batch_end = 0
        -- Once per statement (OFFSET 0 keeps it from being pulled into
        -- every row's SET list).
        FROM (SELECT outbox._window_snapshot(pg_current_snapshot()) AS snap OFFSET 0) AS w
        -- OFFSET 0 keeps each NOT EXISTS a probe per partition through
        -- (part, xid, id): as an anti join the planner hashed the whole
        -- current segment, 118 ms and growing with it at 4000 msg/s
        -- (pg_stat_statements; this way well under 1 ms).
        WHERE p.part = ANY (idle)
          AND NOT EXISTS (
              SELECT 1 FROM outbox.log AS l
              WHERE l.part = p.part AND l.xid >= pg_snapshot_xmax(p.snap_hi)
              OFFSET 0)
          AND NOT EXISTS (
              SELECT 1 FROM outbox.log AS l
              WHERE l.part = p.part AND l.xid = ANY (ARRAY(SELECT pg_snapshot_xip(p.snap_hi)))
              OFFSET 0);
    END IF;
    SELECT (s.last_value % 3)::smallint INTO cur FROM outbox.log_segment AS s;
    UPDATE outbox.segments AS g
    SET state = 'sealed', sealed_xid = outbox._next_xid()::text::xid8, since = now_
    WHERE g.state = 'current' AND g.seg <> cur;
    UPDATE outbox.segments AS g
    SET state = 'current', sealed_xid = NULL, since = now_
    WHERE g.seg = cur AND g.state <> 'current';

    -- A segment empty on disk that has statistics (VACUUM or ANALYZE ran
    -- while it was empty: a nightly vacuumdb, the bench's reset) is planned
    -- as empty: zero rows, so a cached plan seq-scans it or picks any index,
    -- and keeps that plan after the segment fills, until something
    -- invalidates it. Measured after a VACUUM of the empty outbox at
    -- 4000 msg/s: claims took 40 to 70 ms instead of 2 ms for the first 20 s,
    -- until the first truncation replanned them (pg_stat_statements). Such a
    -- segment is truncated again: reltuples goes back to -1 (never counted:
    -- the planner assumes ten pages) and every cached plan on the log is
    -- invalidated. Its lock is held to the end of this transaction, which
    -- is once per VACUUM of an empty segment.
    FOR unplanned IN
        SELECT g.seg, c.oid
        FROM outbox.segments AS g
        JOIN pg_class AS c ON c.oid = format('outbox.%I', 'log_' || g.seg)::regclass
        WHERE c.reltuples >= 0 AND c.relpages = 0 AND pg_relation_size(c.oid) = 0
        ORDER BY g.seg
    LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '50ms', true);
            EXECUTE format('LOCK TABLE outbox.%I IN ACCESS EXCLUSIVE MODE', 'log_' || unplanned.seg);
            -- Under the lock no producer is half-way: still empty means empty.
            IF pg_relation_size(unplanned.oid) = 0 THEN
                EXECUTE format('TRUNCATE outbox.%I', 'log_' || unplanned.seg);
            END IF;
        EXCEPTION WHEN lock_not_available THEN
            NULL; -- busy: the next rotation tries again
        END;
        PERFORM set_config('lock_timeout', caller_lock_timeout, true);
    END LOOP;

    FOR sealed IN SELECT g.seg, g.sealed_xid FROM outbox.segments AS g WHERE g.state = 'sealed' ORDER BY g.seg
    LOOP
        CONTINUE WHEN pg_snapshot_xmin(pg_current_snapshot()) < sealed.sealed_xid;
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM outbox.partitions AS p WHERE pg_snapshot_xmin(p.snap_lo) < sealed.sealed_xid);
        -- A deferred message is read but not handed out yet, and a leased
        -- batch can hold messages of an earlier window (found by the
        -- model-based suite: a deferred message's segment was truncated
        -- under its batch). Probed per partition through (part, id): as a
        -- join with `id = ANY (deferred) OR id = ANY (batch)` the planner
        -- hash-joined a seq scan of the whole segment and tested every row
        -- against both arrays, 11 s per truncation at 2000 msg/s (a claim
        -- ran it, holding partitions meanwhile: W3's p99 of seconds); this
        -- way it is 0.6 ms (EXPLAIN ANALYZE, 150k rows in the segment).
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM outbox.partitions AS p
            WHERE cardinality(p.deferred) + cardinality(p.batch) > 0
              AND EXISTS (
                  SELECT 1 FROM outbox.log AS l
                  WHERE l.seg = sealed.seg AND l.part = p.part
                    AND l.id = ANY (p.deferred || p.batch)));
        BEGIN
            PERFORM set_config('lock_timeout', '50ms', true);
            EXECUTE format('LOCK TABLE outbox.%I IN ACCESS EXCLUSIVE MODE', 'log_' || sealed.seg);
            EXECUTE format('TRUNCATE outbox.%I', 'log_' || sealed.seg);
            UPDATE outbox.segments AS g
            SET state = 'empty', sealed_xid = NULL, since = now_
            WHERE g.seg = sealed.seg;
        EXCEPTION WHEN lock_not_available THEN
            NULL; -- busy: the next rotation tries again
        END;
        PERFORM set_config('lock_timeout', caller_lock_timeout, true);
    END LOOP;

    IF EXISTS (SELECT 1 FROM outbox.segments AS g
               WHERE g.seg = cur AND g.since <= now_ - every)
       AND EXISTS (SELECT 1 FROM outbox.segments AS g
                   WHERE g.seg = (cur + 1) % 3 AND g.state = 'empty')
    THEN
        PERFORM nextval('outbox.log_segment');
        UPDATE outbox.segments AS g
        SET state = 'sealed', sealed_xid = outbox._next_xid()::text::xid8, since = now_
        WHERE g.seg = cur;
        UPDATE outbox.segments AS g
        SET state = 'current', since = now_
        WHERE g.seg = (cur + 1) % 3;
    END IF;
END;
$$;

CREATE FUNCTION outbox.rotate() RETURNS TABLE (seg smallint, state text, since timestamptz, messages bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM outbox._rotate();
    RETURN QUERY
        SELECT g.seg, g.state, g.since,
               (SELECT count(*) FROM outbox.log AS l WHERE l.seg = g.seg)
        FROM outbox.segments AS g
        ORDER BY g.seg;
END;
$$;

COMMENT ON FUNCTION outbox.rotate() IS
    'Switch and truncate log segments now if they are due (claim() does this by itself), and show each segment''s state and size.';

-- outbox.set_partitions(n): how many partitions the log has, the cap on how
-- many batches from the log are out at once (docs/storage.md, "The log").
-- Returns the previous count.
--
-- Why the rules:
-- * A keyed message's partition is its key's hash modulo the count, so a
--   new count moves keys to other partitions. A key keeps its order across
--   the change only if nothing written under the old count is still
--   unfinished in the log, so the call refuses (55000) while the log holds
--   anything unfinished (outbox.messages, place 'log', is that rule's
--   home). The side table may hold anything: it hands out per key in id
--   order, whatever the partition.
-- * LOCK ... IN SHARE MODE waits for every transaction that wrote the log
--   to end and keeps producers out until this one ends, so nothing is
--   written under the old count after the check. Producers wait for the
--   call, they do not fail; so the wait for the lock is bounded (2 s), or
--   an idle producer transaction would hold every producer up behind it.
-- * Partition rows are never removed, and _rotate() creates missing ones
--   from the start of time: a partition beyond a smaller count keeps its
--   row (finished, idle, its window moved on by rotation) and resumes from
--   it if the count grows again, and a partition that never had a row
--   never had a message consumed. So no row depends on this call's
--   transaction, and a call that fails after setval() (which no rollback
--   undoes) leaves nothing to repair.
-- * Segment row 0 is locked first (through _rotate(), which creates it on
--   first use): rotation's switch is a nextval() of the same sequence, and
--   the read and setval() here must not straddle one. Rotation takes that
--   row with SKIP LOCKED, so a claim inside a producing transaction never
--   waits for it (taken after the log lock, the two could deadlock). The
--   partition rows are not locked: a claim or settle in flight can only
--   finish messages, never make one unfinished.
CREATE FUNCTION outbox.set_partitions(partitions integer) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    layout bigint;
    old integer;
    waiting record;
    caller_lock_timeout text := current_setting('lock_timeout');
BEGIN
    IF partitions IS NULL THEN
        RAISE EXCEPTION 'partitions must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the number of partitions, from 1 to 1024 (16 is the default).';
    END IF;
    IF partitions < 1 OR partitions > 1024 THEN
        RAISE EXCEPTION 'partitions is %, it must be from 1 to 1024', partitions
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The count caps how many batches from the log are out at once; a few per relay worker is plenty (16 is the default).';
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'outbox.set_partitions() must run in a READ COMMITTED transaction'
            USING ERRCODE = 'active_sql_transaction',
                  HINT = 'It checks what has committed after waiting for producers; call it outside REPEATABLE READ and SERIALIZABLE transactions.';
    END IF;
    IF (SELECT s.last_value / 3221225472 FROM outbox.log_segment AS s) = partitions THEN
        RETURN partitions;
    END IF;

    PERFORM outbox._rotate();
    PERFORM 1 FROM outbox.segments AS g WHERE g.seg = 0 FOR UPDATE;
    BEGIN
        PERFORM set_config('lock_timeout', '2s', true);
        LOCK TABLE outbox.log IN SHARE MODE;
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION 'a transaction that wrote to the outbox has been open for more than 2 seconds'
            USING ERRCODE = 'lock_not_available',
                  HINT = 'set_partitions waits for producers in flight and holds new ones meanwhile; find the long transaction in pg_stat_activity (or pg_locks on outbox.log) and call again once it ended.';
    END;
    PERFORM set_config('lock_timeout', caller_lock_timeout, true);
    SELECT count(*) AS n, min(m.id) AS oldest INTO waiting
    FROM outbox.messages AS m WHERE m.place = 'log';
    IF waiting.n > 0 THEN
        RAISE EXCEPTION 'the log still holds % unfinished message(s), the oldest is message %',
                waiting.n, waiting.oldest
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A new count moves keys to other partitions, which would break their order. Pause the producers until the relays have delivered the log (SELECT count(*) FROM outbox.messages WHERE place = ''log'' is 0), then call set_partitions again.';
    END IF;

    SELECT s.last_value INTO layout FROM outbox.log_segment AS s;
    old := (layout / 3221225472)::integer;
    -- Takes effect at once; missing partition rows come with the next
    -- _rotate() (any claim's, within a second).
    PERFORM setval('outbox.log_segment', partitions * 3221225472 + layout % 3221225472, true);
    PERFORM outbox._rotate();
    RETURN old;
END;
$$;

COMMENT ON FUNCTION outbox.set_partitions(integer) IS
    'Change how many partitions the log has (the cap on batches out at once; 16 by default) while the log holds nothing unfinished. Takes effect at once, also if the calling transaction rolls back. Returns the previous count.';

-- Functions whose SQL changed (admin.sql, grants.sql).
CREATE OR REPLACE FUNCTION outbox.stats()
RETURNS TABLE (
    topic              text,
    ready              bigint,
    blocked            bigint,
    scheduled          bigint,
    leased             bigint,
    dead               bigint,
    oldest_ready_age   interval
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH live AS (
        SELECT m.topic,
               m.lease_expires_at > (SELECT outbox._now()) AS leased,
               m.deliver_at > (SELECT outbox._now())
                   AND NOT coalesce(m.lease_expires_at > (SELECT outbox._now()), false) AS scheduled,
               -- Ready since it was due, but never before it was enqueued
               -- (a deliver_at in the past does not count as lag).
               greatest(m.deliver_at, m.created_at) AS ready_since,
               -- Behind an older message of its key (a window function, not
               -- a probe per row: outbox.messages is a view over two places).
               m.key IS NOT NULL AND m.id > min(m.id) OVER (PARTITION BY m.key) AS behind_older
        FROM outbox.messages AS m
    ),
    per_topic AS (
        SELECT l.topic,
               count(*) FILTER (WHERE l.leased IS NOT TRUE AND NOT l.scheduled) AS ready,
               count(*) FILTER (WHERE l.leased IS NOT TRUE AND NOT l.scheduled AND l.behind_older) AS blocked,
               count(*) FILTER (WHERE l.scheduled) AS scheduled,
               count(*) FILTER (WHERE l.leased) AS leased,
               min(l.ready_since) FILTER (WHERE l.leased IS NOT TRUE AND NOT l.scheduled) AS oldest_ready
        FROM live AS l
        GROUP BY l.topic
    ),
    dead AS (
        SELECT d.topic, count(*) AS dead FROM outbox.dead_letters AS d GROUP BY d.topic
    )
    SELECT coalesce(p.topic, d.topic),
           coalesce(p.ready, 0), coalesce(p.blocked, 0), coalesce(p.scheduled, 0),
           coalesce(p.leased, 0), coalesce(d.dead, 0),
           (SELECT outbox._now()) - p.oldest_ready
    FROM per_topic AS p
    FULL JOIN dead AS d ON d.topic = p.topic
    ORDER BY 1
$$;

CREATE OR REPLACE FUNCTION outbox.blocked_keys(max_rows integer DEFAULT 100)
RETURNS TABLE (
    topic           text,
    key             text,
    head_id         bigint,
    head_state      text,
    head_attempt    integer,
    head_due_at     timestamptz,
    head_last_error text,
    waiting         bigint
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH m AS MATERIALIZED (
        SELECT * FROM outbox.messages AS m WHERE m.key IS NOT NULL
    ),
    keyed AS (
        SELECT m.key, count(*) - 1 AS waiting, min(m.id) AS head_id
        FROM m
        GROUP BY m.key
        HAVING count(*) > 1
    )
    SELECT h.topic, k.key, h.id,
           CASE
               WHEN h.lease_expires_at > (SELECT outbox._now()) THEN 'leased'
               WHEN h.deliver_at > (SELECT outbox._now()) AND h.attempt > 0 THEN 'retrying'
               WHEN h.deliver_at > (SELECT outbox._now()) THEN 'scheduled'
               ELSE 'ready'
           END,
           h.attempt, h.deliver_at, h.last_error, k.waiting
    FROM keyed AS k
    JOIN m AS h ON h.id = k.head_id
    ORDER BY k.waiting DESC, h.id
    LIMIT outbox._max_rows(max_rows)
$$;

CREATE OR REPLACE FUNCTION outbox.requeue_dead(ids bigint[]) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    PERFORM outbox._check_dead_ids(ids);
    -- The message keeps its id (consumers deduplicate on it) and so its place
    -- in its key's order; it starts over with a fresh set of attempts.
    WITH revived AS (
        DELETE FROM outbox.dead_letters AS d WHERE d.id = ANY (ids) RETURNING d.*
    ),
    back AS (
        INSERT INTO outbox.side
            (id, topic, key, payload, headers, created_at, deliver_at, attempt, max_attempts, last_error)
        SELECT r.id, r.topic, r.key, r.payload, r.headers, r.created_at, (SELECT outbox._now()),
               0, r.max_attempts, r.last_error
        FROM revived AS r
        RETURNING 1
    )
    SELECT count(*) INTO n FROM back;
    RETURN n;
END;
$$;

CREATE OR REPLACE FUNCTION outbox.grant_admin(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM outbox._grant_functions(role, ARRAY[
        'enqueue', 'enqueue_batch',
        'claim', 'complete', 'complete_batch', 'fail', 'release', 'release_batch',
        'extend', 'extend_batch', 'doorbell_channel', 'doorbell_arm', 'doorbell_disarm', 'stats',
        'blocked_keys', 'list_dead', 'requeue_dead', 'requeue_dead_topic', 'purge_dead', 'purge_dead_topic',
        'rotate', 'set_partitions']);
    EXECUTE format('GRANT SELECT ON outbox.messages, outbox.dead_letters, outbox.side, outbox.log,'
                   ' outbox.partitions, outbox.segments TO %s', role);
END;
$$;

CREATE OR REPLACE FUNCTION outbox.revoke_all(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass an existing role name, e.g. ''app_writer''.';
    END IF;
    EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA outbox FROM %s', role);
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA outbox FROM %s', role);
    -- Tables do not cover sequences: a hand-granted USAGE on message_id
    -- would survive, and setval() by oid needs no schema USAGE.
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA outbox FROM %s', role);
    EXECUTE format('REVOKE ALL ON SCHEMA outbox FROM %s', role);
END;
$$;

-- PUBLIC gets nothing of the new objects (grants.sql).
REVOKE ALL ON ALL TABLES IN SCHEMA outbox FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA outbox FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox."_next_xid"() FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox._rotate() FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox._window_snapshot(pg_snapshot) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.rotate() FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.set_partitions(integer) FROM PUBLIC;

-- Admins of 0.1.0 (grant_admin gave them SELECT on dead_letters) keep
-- seeing everything: the new tables and rotate() as grant_admin gives them
-- now.
DO $$
DECLARE
    r regrole;
BEGIN
    FOR r IN
        SELECT DISTINCT a.grantee::regrole
        FROM pg_catalog.pg_class AS c,
             LATERAL pg_catalog.aclexplode(c.relacl) AS a
        WHERE c.oid = 'outbox.dead_letters'::regclass AND a.privilege_type = 'SELECT'
          AND a.grantee <> c.relowner AND a.grantee <> 0
    LOOP
        PERFORM outbox.grant_admin(r);
    END LOOP;
END;
$$;

-- claim() becomes a PL/pgSQL wrapper (sql/claim.sql) around the C function
-- outbox._claim(), which only the owner may execute. CREATE OR REPLACE
-- keeps the grants roles have on claim().
CREATE FUNCTION outbox."_claim"(
	"owner" TEXT,
	"batch_size" INT,
	"lease" interval,
	"topics" TEXT[]
) RETURNS TABLE (
	"id" bigint,
	"topic" TEXT,
	"key" TEXT,
	"payload" jsonb,
	"headers" jsonb,
	"attempt" INT,
	"lease_token" uuid,
	"lease_expires_at" timestamp with time zone,
	"created_at" timestamp with time zone
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'claim_wrapper';
REVOKE ALL ON FUNCTION outbox."_claim"(text, integer, interval, text[]) FROM PUBLIC;

-- outbox.claim(): lease up to batch_size ready messages, oldest first, to
-- owner for lease (NULL: outbox.default_lease). Every row of one call shares
-- one lease_token; finish them with complete / fail / release / extend.
-- The work is outbox._claim() (api/claim.rs); this wrapper is what callers
-- and grants see.
--
-- Why a PL/pgSQL wrapper:
-- * A set-returning C function is called once per row it returns, and
--   PostgreSQL applies the function's SET clauses (and SECURITY DEFINER) on
--   every one of those calls: with them on the C function, 15 to 20% of a
--   claim of 1000 went to setting and restoring GUCs (measured with perf).
--   A PL/pgSQL function returns its rows in one call, so the settings below
--   are made once per claim. _claim() itself has none and only the owner may
--   execute it.
-- * enable_bitmapscan = off: autovacuum is off on the log's segments, so
--   they have no statistics, a window's range is estimated at a few rows,
--   and the planner read the whole range with a bitmap scan and sorted it
--   to return the first batch: 23 ms per claim of 1000 on a 20k-row window,
--   against 2.5 ms walking the (part, id) index in order (measured). A
--   bitmap scan also cannot stop at the first row an EXISTS needs. The
--   setting counts when a statement is planned, and claim()'s statements
--   are only ever planned inside claim().
-- * plan_cache_mode = force_generic_plan: claim_side.sql was planned afresh
--   on every call (its custom plan always looked cheaper), 0.57 ms a time,
--   twice per claim (pg_stat_statements.track_planning).
CREATE OR REPLACE FUNCTION outbox.claim(
    owner text,
    batch_size integer DEFAULT 100,
    lease interval DEFAULT NULL,
    topics text[] DEFAULT NULL
) RETURNS TABLE (
    id bigint,
    topic text,
    key text,
    payload jsonb,
    headers jsonb,
    attempt integer,
    lease_token uuid,
    lease_expires_at timestamptz,
    created_at timestamptz
)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $$
BEGIN
    RETURN QUERY SELECT c.* FROM outbox._claim($1, $2, $3, $4) AS c;
END;
$$;
