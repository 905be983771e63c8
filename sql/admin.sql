-- Operator functions: what is in the outbox, and what to do with dead letters.
-- They are not on the hot path, so they are plain SQL / PL/pgSQL where a DBA
-- reads them. All pin search_path and run as the extension owner, so callers
-- need only EXECUTE (see outbox.grant_admin). The time is outbox._now()
-- (clock.rs: the statement's start, moved by outbox.test_clock_offset in
-- tests), as a scalar subquery so it is computed once per statement.

-- max_rows for the listing functions: NULL means all rows.
CREATE FUNCTION outbox._max_rows(max_rows integer) RETURNS integer
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF max_rows < 0 THEN
        RAISE EXCEPTION 'max_rows is %, it must not be negative', max_rows
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass how many rows to list, or NULL for all of them.';
    END IF;
    RETURN max_rows;
END;
$$;

CREATE FUNCTION outbox.stats()
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

COMMENT ON FUNCTION outbox.stats() IS
    'Per topic: ready (due, not leased; blocked = ready but behind an older message of its key), scheduled (future deliver_at or waiting for a retry), leased, dead, and the age of the oldest ready message (the relay''s lag).';

CREATE FUNCTION outbox.blocked_keys(max_rows integer DEFAULT 100)
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
           outbox._state(h.lease_expires_at, h.deliver_at, h.attempt, (SELECT outbox._now())),
           h.attempt, h.deliver_at, h.last_error, k.waiting
    FROM keyed AS k
    JOIN m AS h ON h.id = k.head_id
    ORDER BY k.waiting DESC, h.id
    LIMIT outbox._max_rows(max_rows)
$$;

COMMENT ON FUNCTION outbox.blocked_keys(integer) IS
    'Keys with messages waiting behind their oldest unfinished message (the head), with the head''s state and last error. A head that is retrying holds its key back until it succeeds or dies.';

CREATE FUNCTION outbox.list_dead(topic text DEFAULT NULL, max_rows integer DEFAULT 100)
RETURNS SETOF outbox.dead_letters
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.*
    FROM outbox.dead_letters AS d
    WHERE list_dead.topic IS NULL OR d.topic = list_dead.topic
    ORDER BY d.id
    LIMIT outbox._max_rows(max_rows)
$$;

COMMENT ON FUNCTION outbox.list_dead(text, integer) IS
    'Dead letters, oldest first, with their last error, attempts, reason and time of death.';

-- Shared checks for the functions that take dead-letter ids.
CREATE FUNCTION outbox._check_dead_ids(ids bigint[]) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    missing bigint;
BEGIN
    IF ids IS NULL OR array_position(ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'ids must be an array of dead letter ids without NULLs'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass ARRAY[id, ...] with ids from outbox.list_dead().';
    END IF;
    SELECT u.id INTO missing
    FROM unnest(ids) AS u(id)
    WHERE NOT EXISTS (SELECT 1 FROM outbox.dead_letters AS d WHERE d.id = u.id)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'message % is not a dead letter', missing
            USING ERRCODE = 'no_data_found',
                  HINT = 'See outbox.list_dead() for the dead letters; nothing was changed.';
    END IF;
END;
$$;

CREATE FUNCTION outbox.requeue_dead(ids bigint[]) RETURNS integer
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

CREATE FUNCTION outbox.requeue_dead_topic(topic text) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT outbox.requeue_dead(coalesce(array_agg(d.id ORDER BY d.id), '{}'))
    FROM outbox.dead_letters AS d
    WHERE requeue_dead_topic.topic IS NULL OR d.topic = requeue_dead_topic.topic
$$;

COMMENT ON FUNCTION outbox.requeue_dead(bigint[]) IS
    'Put dead letters back into the outbox (same id, attempts start over). Unknown ids are an error and change nothing.';
COMMENT ON FUNCTION outbox.requeue_dead_topic(text) IS
    'Put every dead letter of a topic (NULL = every topic) back into the outbox. Returns how many.';

CREATE FUNCTION outbox.purge_dead(ids bigint[]) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    PERFORM outbox._check_dead_ids(ids);
    DELETE FROM outbox.dead_letters AS d WHERE d.id = ANY (ids);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

CREATE FUNCTION outbox.purge_dead_topic(topic text, older_than interval DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
    cutoff timestamptz;
BEGIN
    IF older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must not be negative'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass NULL to purge regardless of age, or how long a letter must have been dead, e.g. ''30 days''.';
    END IF;
    IF older_than IS NOT NULL THEN
        BEGIN
            cutoff := outbox._now() - older_than;
        EXCEPTION WHEN datetime_field_overflow THEN
            -- Older than timestamptz's calendar (the fuzzer's 178000000
            -- years): nothing died that long ago, so nothing is purged.
            RETURN 0;
        END;
    END IF;
    DELETE FROM outbox.dead_letters AS d
    WHERE (purge_dead_topic.topic IS NULL OR d.topic = purge_dead_topic.topic)
      AND (cutoff IS NULL OR d.died_at < cutoff);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

COMMENT ON FUNCTION outbox.purge_dead(bigint[]) IS
    'Delete the given dead letters for good. Unknown ids are an error and change nothing.';
COMMENT ON FUNCTION outbox.purge_dead_topic(text, interval) IS
    'Delete the dead letters of a topic (NULL = every topic), optionally only those dead for longer than older_than.';
