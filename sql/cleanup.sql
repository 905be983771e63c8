-- outbox.cleanup(): the housekeeping of the optional features, for any
-- scheduler to call (pg_cron, a cron job); every minute or so is plenty.
-- Removes, at most max_rows of each a call, oldest first:
-- * dedup keys no message holds any more (dedup.sql), and
-- * published history older than outbox.retention (history.sql); all of it
--   when retention is off, so turning it off empties the table.
-- Why the shape:
-- * It looks at most max_rows keys whose window has passed, so a call costs
--   O(max_rows) whatever the backlog: keys of messages still unfinished are
--   skipped (counted as looked at) and met again by a later call.
-- * The history is deleted oldest first through its published_at index,
--   max_rows at a time: a short transaction, never one long DELETE.
-- * FOR UPDATE SKIP LOCKED, for keys and history alike: a key a producer is
--   re-taking right now is that producer's, and rows another cleaner is
--   deleting are its own; two cleaners (several relays) never wait for
--   each other.
-- * Lock, then ask, in two statements: asked in the locking statement, a key
--   a producer had just handed to a new message was judged on the old
--   snapshot, in which that message did not exist yet, and removed while
--   the message was waiting; a second producer then wrote a duplicate
--   (tests/tests/it/dedup.rs, cleanup_and_producers_on_the_same_keys_agree).
-- * Short transactions of a bounded number of deletes keep locks brief; the
--   table's autovacuum settings keep up with the dead rows.
CREATE FUNCTION outbox.cleanup(max_rows integer DEFAULT 10000) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    locked text[];
    keys bigint;
    history bigint;
    keep interval := outbox._retention();
BEGIN
    IF max_rows IS NULL THEN
        RAISE EXCEPTION 'max_rows must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass how many rows one call may look at, e.g. 10000.';
    END IF;
    IF max_rows < 1 OR max_rows > 1000000 THEN
        RAISE EXCEPTION 'max_rows is %, it must be between 1 and 1000000', max_rows
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass how many rows one call may look at, e.g. 10000.';
    END IF;
    SELECT pg_catalog.array_agg(c.dedup_key) INTO locked
    FROM (SELECT d.dedup_key
          FROM outbox.dedup AS d
          WHERE d.held_until <= (SELECT outbox._now())
          ORDER BY d.held_until
          LIMIT max_rows
          FOR UPDATE SKIP LOCKED) AS c;
    -- A second statement, so a fresh snapshot: a locked row may be a
    -- version newer than the first statement's snapshot (a producer handed
    -- the key to a new message and committed), and that message must be
    -- visible to the question whether it is finished.
    DELETE FROM outbox.dedup AS d
    WHERE d.dedup_key = ANY (locked)
      AND d.held_until <= (SELECT outbox._now())
      AND NOT outbox._message_unfinished(d.id, d.part);
    GET DIAGNOSTICS keys = ROW_COUNT;
    DELETE FROM outbox.published AS h
    WHERE h.id IN (SELECT o.id
                   FROM outbox.published AS o
                   WHERE o.published_at <= (SELECT outbox._now()) - keep
                   ORDER BY o.published_at
                   LIMIT max_rows
                   FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS history = ROW_COUNT;
    RETURN keys + history;
END;
$$;

COMMENT ON FUNCTION outbox.cleanup(integer) IS
    'Remove up to max_rows dedup keys that no unfinished message holds and whose window has passed, and up to max_rows published messages older than outbox.retention; returns how many rows were removed.';
