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
--   one's batch was settled or moved to the side table. Nothing in the
--   segment can still be handed out.
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
    seg record;
    now_ timestamptz := outbox._now();
    every interval := current_setting('outbox.rotation_interval')::interval;
    caller_lock_timeout text := current_setting('lock_timeout');
BEGIN
    -- Serialise rotations on segment 0's row; a claim that finds one
    -- running just goes on.
    PERFORM 1 FROM outbox.segments AS g WHERE g.seg = 0 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT (s.last_value % 3)::smallint INTO cur FROM outbox.log_segment AS s;
    UPDATE outbox.segments AS g
    SET state = 'sealed', sealed_xid = outbox._next_xid()::text::xid8, since = now_
    WHERE g.state = 'current' AND g.seg <> cur;
    UPDATE outbox.segments AS g
    SET state = 'current', sealed_xid = NULL, since = now_
    WHERE g.seg = cur AND g.state <> 'current';

    FOR seg IN SELECT g.seg, g.sealed_xid FROM outbox.segments AS g WHERE g.state = 'sealed' ORDER BY g.seg
    LOOP
        CONTINUE WHEN pg_snapshot_xmin(pg_current_snapshot()) < seg.sealed_xid;
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM outbox.partitions AS p WHERE pg_snapshot_xmin(p.snap_lo) < seg.sealed_xid);
        BEGIN
            PERFORM set_config('lock_timeout', '50ms', true);
            EXECUTE format('LOCK TABLE outbox.%I IN ACCESS EXCLUSIVE MODE', 'log_' || seg.seg);
            EXECUTE format('TRUNCATE outbox.%I', 'log_' || seg.seg);
            UPDATE outbox.segments AS g
            SET state = 'empty', sealed_xid = NULL, since = now_
            WHERE g.seg = seg.seg;
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
