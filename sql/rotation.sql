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
