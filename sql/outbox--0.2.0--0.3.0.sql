-- outbox 0.2.0 -> 0.3.0: idempotent enqueue (dedup keys), the published-
-- message history (retention), list_messages and get_message.
--
-- Frozen once released, like every install and upgrade script
-- (docs/upgrading.md). What it does:
-- * Creates outbox.dedup and outbox._message_unfinished() (sql/dedup.sql),
--   outbox.published (sql/history.sql), outbox._state() (sql/state.sql),
--   outbox._retention(), outbox._listing(), list_messages() and
--   get_message() (sql/inspect.sql) and cleanup() (sql/cleanup.sql), copied
--   below as the fresh install has them; blocked_keys() now names states
--   through _state() (same answers).
-- * enqueue() and enqueue_batch() gain dedup_key(s) and dedup_window. An
--   argument cannot be added with CREATE OR REPLACE, so each is dropped and
--   created again, and every role that could execute the old one gets
--   EXECUTE on the new one. The 0.2.0 functions' C symbols (enqueue_wrapper,
--   enqueue_batch_wrapper) stay in the library for the 0.1.0 and 0.2.0
--   install scripts; the new ones bind new symbols.
-- * Relays get cleanup(); admins get cleanup(), list_messages(),
--   get_message() and SELECT on outbox.dedup and outbox.published, as
--   grant_relay and grant_admin give them now.
-- No table is rewritten and no row moves: the log, the side table, the
-- partitions and the dead letters are untouched.
-- The result equals a fresh 0.3.0 install (tests/tests/upgrade/ compares
-- the catalogs).

-- Why a table of its own, and nothing in the log:
-- * The log is insert-only and settles whole batches by moving a cursor
--   (docs/storage.md). Whether one message is finished is a question
--   asked of its partition's window, so the key's row records the
--   partition and the question is asked only when a second enqueue meets
--   the key (outbox._message_unfinished below) or cleanup() looks at it.
--   Nothing is written per message when it is published.
-- * Plain enqueue (no dedup key) never touches this table: the measured
--   cost of the feature for callers who do not use it is nothing
--   (docs/bench).
-- * The primary key is the lock: concurrent producers with one key wait for
--   each other on the unique index (INSERT ... ON CONFLICT DO NOTHING), so
--   exactly one message is written and the others get its id. Keys are
--   taken in sorted order within a call, so two batches with the same keys
--   in a different order cannot deadlock.
CREATE TABLE outbox.dedup (
    dedup_key  text        NOT NULL,
    id         bigint      NOT NULL,
    part       smallint    NOT NULL,
    held_until timestamptz NOT NULL,
    CONSTRAINT dedup_pkey PRIMARY KEY (dedup_key)
) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);

-- cleanup() walks the keys whose window has passed, oldest first; a key
-- whose message is still unfinished is skipped and looked at again later.
CREATE INDEX dedup_held_until ON outbox.dedup (held_until);

COMMENT ON TABLE outbox.dedup IS
    'Dedup keys and the message holding each (enqueue(..., dedup_key => ...)); rows are removed by outbox.cleanup().';

SELECT pg_catalog.pg_extension_config_dump('outbox.dedup', '');

-- Is message `id` (in log partition `part`) unfinished: in the side table,
-- or in the log and not yet consumed? The log half is the rule of the view
-- outbox.messages (views.sql) for one row, found through the (part, id)
-- index: the view itself cannot be asked by id cheaply, as it does not
-- expose the partition. Keep the two together.
-- A message whose log segment was truncated is finished (rotation truncates
-- only segments whose every message was handed out), and so is one that
-- became a dead letter.
-- PL/pgSQL, not SQL: a SQL function that is not inlined is planned again in
-- every statement that calls it, and this one is called once per key met;
-- PL/pgSQL keeps its plans for the session (the reason schema.sql gives for
-- _window_snapshot). As SQL it made a duplicate enqueue cost 282 µs, most
-- of it planning (a DO loop of 20000 enqueues of held keys).
-- No SET clause, for the reason in schema.sql (_window_snapshot): it is
-- called per key met, and only from functions that pin search_path
-- (tests/tests/security/shadowing.rs, UNPINNED_BODIES).
CREATE FUNCTION outbox._message_unfinished(id bigint, part smallint) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
AS $$
BEGIN
    RETURN EXISTS (SELECT FROM outbox.side AS s WHERE s.id OPERATOR(pg_catalog.=) $1)
        OR EXISTS (
            SELECT
            FROM outbox.log AS l
            LEFT JOIN outbox.partitions AS p ON p.part OPERATOR(pg_catalog.=) l.part
            WHERE l.part OPERATOR(pg_catalog.=) $2 AND l.id OPERATOR(pg_catalog.=) $1
              AND (p.part IS NULL
                   OR l.id OPERATOR(pg_catalog.=) ANY (p.deferred)
                   OR l.id OPERATOR(pg_catalog.=) ANY (p.batch)
                   OR (NOT pg_catalog.pg_visible_in_snapshot(l.xid, p.snap_lo)
                       AND NOT (pg_catalog.pg_visible_in_snapshot(l.xid, p.snap_hi)
                                AND l.id OPERATOR(pg_catalog.<=) p.batch_end
                                AND l.id OPERATOR(pg_catalog.<>) ALL (p.batch)))));
END;
$$;

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

-- A message's state as the listing functions and blocked_keys() name it,
-- from the columns outbox.messages has: one home for the rule.
-- * leased: a lease that has not expired (an expired one is claimable again,
--   so the message counts as what its due time says);
-- * retrying: not due yet after at least one attempt (a failed publish);
-- * scheduled: not due yet, never attempted (deliver_at in the future);
-- * ready: everything else that is unfinished.
-- SQL, IMMUTABLE, no SET clause: inlined into its callers' queries, which
-- pin search_path (tests/tests/security/shadowing.rs, UNPINNED_BODIES).
CREATE FUNCTION outbox._state(lease_expires_at timestamptz, deliver_at timestamptz,
                              attempt integer, now timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
               WHEN $1 OPERATOR(pg_catalog.>) $4 THEN 'leased'
               WHEN $2 OPERATOR(pg_catalog.>) $4 AND $3 OPERATOR(pg_catalog.>) 0 THEN 'retrying'
               WHEN $2 OPERATOR(pg_catalog.>) $4 THEN 'scheduled'
               ELSE 'ready'
           END
$$;

-- blocked_keys() as sql/admin.sql has it now (its states from _state()).
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
           outbox._state(h.lease_expires_at, h.deliver_at, h.attempt, (SELECT outbox._now())),
           h.attempt, h.deliver_at, h.last_error, k.waiting
    FROM keyed AS k
    JOIN m AS h ON h.id = k.head_id
    ORDER BY k.waiting DESC, h.id
    LIMIT outbox._max_rows(max_rows)
$$;

-- outbox.retention as an interval (api/history.rs).
CREATE FUNCTION outbox."_retention"() RETURNS interval /* Interval */
STRICT STABLE PARALLEL SAFE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'retention_sql_wrapper';

-- Every message the outbox knows, in id order above after_id, at most
-- max_rows (NULL: all), filtered: unfinished ones (the view
-- outbox.messages: the log and the side table), dead letters, and published
-- ones kept by outbox.retention. The body of list_messages and
-- get_message; no SET clause, so it is inlined into them (UNPINNED_BODIES,
-- as above).
-- $1 after_id, $2 max_rows, $3 now, $4 topic, $5 state, $6 key,
-- $7 tenant_id, $8 correlation_id (NULL: any)
-- Why the shape: keyset pagination over three places. Each branch applies
-- the filters and is cut to max_rows in id order; the first max_rows of
-- their merge are then exactly the first max_rows of the whole listing, so
-- after_id => the last id returned is the next page. A branch whose state
-- cannot match is not read at all (a one-time filter). The dead letters and
-- the history are read by primary key from after_id on; the view cannot be
-- read by id cheaply (it checks every log row against its window), so a
-- page of unfinished messages costs a pass over them: fine for an
-- operator's question, not for a hot path.
-- Headers are matched with ->> on the tenant and correlation ids of the
-- header convention (docs/sql-api.md, "Header conventions").
CREATE FUNCTION outbox._listing(after_id bigint, max_rows integer, now timestamptz,
                                topic text, state text, key text,
                                tenant_id text, correlation_id text)
RETURNS TABLE (
    id               bigint,
    topic            text,
    key              text,
    state            text,
    attempt          integer,
    max_attempts     integer,
    created_at       timestamptz,
    deliver_at       timestamptz,
    lease_owner      text,
    lease_expires_at timestamptz,
    last_error       text,
    finished_at      timestamptz,
    dead_reason      text,
    headers          jsonb,
    payload          jsonb
)
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
    SELECT u.*
    FROM (
        (SELECT v.*
         FROM (SELECT m.id, m.topic, m.key,
                      outbox._state(m.lease_expires_at, m.deliver_at, m.attempt, $3) AS state,
                      m.attempt, m.max_attempts, m.created_at, m.deliver_at,
                      CASE WHEN m.lease_expires_at OPERATOR(pg_catalog.>) $3 THEN m.lease_owner END,
                      CASE WHEN m.lease_expires_at OPERATOR(pg_catalog.>) $3 THEN m.lease_expires_at END,
                      m.last_error, NULL::timestamptz, NULL::text, m.headers, m.payload
               FROM outbox.messages AS m
               WHERE m.id OPERATOR(pg_catalog.>) $1
                 AND ($5 IS NULL OR $5 OPERATOR(pg_catalog.<>) ALL (ARRAY['dead', 'published']))
                 AND ($4 IS NULL OR m.topic OPERATOR(pg_catalog.=) $4)
                 AND ($6 IS NULL OR m.key OPERATOR(pg_catalog.=) $6)
                 AND ($7 IS NULL OR m.headers OPERATOR(pg_catalog.->>) 'tenant-id' OPERATOR(pg_catalog.=) $7)
                 AND ($8 IS NULL OR m.headers OPERATOR(pg_catalog.->>) 'correlation-id' OPERATOR(pg_catalog.=) $8)) AS v
         WHERE $5 IS NULL OR v.state OPERATOR(pg_catalog.=) $5
         ORDER BY v.id
         LIMIT $2)
        UNION ALL
        (SELECT d.id, d.topic, d.key, 'dead', d.attempts, d.max_attempts, d.created_at,
                NULL::timestamptz, NULL::text, NULL::timestamptz, d.last_error, d.died_at,
                d.reason, d.headers, d.payload
         FROM outbox.dead_letters AS d
         WHERE d.id OPERATOR(pg_catalog.>) $1
           AND ($5 IS NULL OR $5 OPERATOR(pg_catalog.=) 'dead')
           AND ($4 IS NULL OR d.topic OPERATOR(pg_catalog.=) $4)
           AND ($6 IS NULL OR d.key OPERATOR(pg_catalog.=) $6)
           AND ($7 IS NULL OR d.headers OPERATOR(pg_catalog.->>) 'tenant-id' OPERATOR(pg_catalog.=) $7)
           AND ($8 IS NULL OR d.headers OPERATOR(pg_catalog.->>) 'correlation-id' OPERATOR(pg_catalog.=) $8)
         ORDER BY d.id
         LIMIT $2)
        UNION ALL
        (SELECT h.id, h.topic, h.key, 'published', h.attempts, NULL::integer, h.created_at,
                NULL::timestamptz, h.published_by, NULL::timestamptz, NULL::text, h.published_at,
                NULL::text, h.headers, h.payload
         FROM outbox.published AS h
         WHERE h.id OPERATOR(pg_catalog.>) $1
           AND ($5 IS NULL OR $5 OPERATOR(pg_catalog.=) 'published')
           AND ($4 IS NULL OR h.topic OPERATOR(pg_catalog.=) $4)
           AND ($6 IS NULL OR h.key OPERATOR(pg_catalog.=) $6)
           AND ($7 IS NULL OR h.headers OPERATOR(pg_catalog.->>) 'tenant-id' OPERATOR(pg_catalog.=) $7)
           AND ($8 IS NULL OR h.headers OPERATOR(pg_catalog.->>) 'correlation-id' OPERATOR(pg_catalog.=) $8)
         ORDER BY h.id
         LIMIT $2)
    ) AS u
    ORDER BY u.id
    LIMIT $2
$$;

-- list_messages' state argument: NULL, or a state _listing knows. SQL
-- functions cannot raise, so the check is this PL/pgSQL helper (and
-- list_messages and get_message are SQL: PL/pgSQL refuses an argument and
-- a result column of one name, and topic, key, state and id are the
-- natural names for both).
CREATE FUNCTION outbox._check_state(state text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF state IS NOT NULL
       AND state NOT IN ('ready', 'scheduled', 'retrying', 'leased', 'dead', 'published') THEN
        RAISE EXCEPTION 'state is %, which is not a message state', quote_literal(state)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass NULL for every state, or one of ''ready'', ''scheduled'', ''retrying'', ''leased'', ''dead'', ''published''.';
    END IF;
    RETURN state;
END;
$$;

-- get_message's id: not NULL, and an id the sequence has issued (the rule of
-- docs/sql-api.md, "Unknown ids are errors"); an issued id that is nowhere
-- any more (published and not kept, or rolled back) is simply no row.
CREATE FUNCTION outbox._issued_id(id bigint) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    issued bigint;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'id must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass an id returned by outbox.enqueue() or outbox.list_messages().';
    END IF;
    SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END INTO issued
    FROM outbox.message_id AS s;
    IF id <= 0 OR id > issued THEN
        RAISE EXCEPTION 'message % does not exist', id
            USING ERRCODE = 'no_data_found',
                  HINT = 'Pass an id returned by outbox.enqueue() or outbox.list_messages().';
    END IF;
    RETURN id;
END;
$$;

CREATE FUNCTION outbox.list_messages(
    topic          text    DEFAULT NULL,
    state          text    DEFAULT NULL,
    key            text    DEFAULT NULL,
    after_id       bigint  DEFAULT NULL,
    max_rows       integer DEFAULT 100,
    tenant_id      text    DEFAULT NULL,
    correlation_id text    DEFAULT NULL
)
RETURNS TABLE (
    id               bigint,
    topic            text,
    key              text,
    state            text,
    attempt          integer,
    max_attempts     integer,
    created_at       timestamptz,
    deliver_at       timestamptz,
    lease_owner      text,
    lease_expires_at timestamptz,
    last_error       text,
    finished_at      timestamptz,
    dead_reason      text,
    headers          jsonb,
    payload          jsonb
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.*
    FROM outbox._listing(coalesce(list_messages.after_id, 0), outbox._max_rows(list_messages.max_rows),
                         (SELECT outbox._now()), list_messages.topic,
                         outbox._check_state(list_messages.state), list_messages.key,
                         list_messages.tenant_id, list_messages.correlation_id) AS l
$$;

COMMENT ON FUNCTION outbox.list_messages(text, text, text, bigint, integer, text, text) IS
    'Messages in every state (ready, scheduled, retrying, leased, dead, and published while outbox.retention keeps them), oldest id first, filtered; page on with after_id => the last id returned.';

CREATE FUNCTION outbox.get_message(id bigint)
RETURNS TABLE (
    id               bigint,
    topic            text,
    key              text,
    state            text,
    attempt          integer,
    max_attempts     integer,
    created_at       timestamptz,
    deliver_at       timestamptz,
    lease_owner      text,
    lease_expires_at timestamptz,
    last_error       text,
    finished_at      timestamptz,
    dead_reason      text,
    headers          jsonb,
    payload          jsonb
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.*
    FROM outbox._listing(outbox._issued_id(get_message.id) - 1, 1, (SELECT outbox._now()),
                         NULL, NULL, NULL, NULL, NULL) AS l
    -- The first message from id on: another one when this one is gone.
    WHERE l.id = get_message.id
$$;

COMMENT ON FUNCTION outbox.get_message(bigint) IS
    'One message by id, in whatever state it is; no row when it was published and not kept (outbox.retention) or its transaction rolled back.';

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

REVOKE ALL ON TABLE outbox.dedup FROM PUBLIC;
REVOKE ALL ON TABLE outbox.published FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox._message_unfinished(bigint, smallint) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox._state(timestamptz, timestamptz, integer, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox."_retention"() FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox._listing(bigint, integer, timestamptz, text, text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox._check_state(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox._issued_id(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.list_messages(text, text, text, bigint, integer, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.get_message(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.cleanup(integer) FROM PUBLIC;

-- enqueue() and enqueue_batch() with dedup keys: created beside the 0.2.0
-- functions, given to every role that may execute those, which are then
-- dropped.
CREATE FUNCTION outbox."enqueue"(
	"topic" TEXT, /* Option < & str > */
	"payload" jsonb, /* Option < RawJsonb > */
	"key" TEXT DEFAULT NULL, /* Option < & str > */
	"headers" jsonb DEFAULT NULL, /* Option < RawJsonb > */
	"deliver_at" timestamp with time zone DEFAULT NULL, /* Option < TimestampWithTimeZone > */
	"max_attempts" INT DEFAULT NULL, /* Option < i32 > */
	"dedup_key" TEXT DEFAULT NULL, /* Option < & str > */
	"dedup_window" interval DEFAULT NULL /* Option < Interval > */
) RETURNS bigint /* OutboxResult < i64 > */
VOLATILE SECURITY DEFINER PARALLEL UNSAFE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'enqueue_with_dedup_wrapper';
CREATE FUNCTION outbox."enqueue_batch"(
	"topic" TEXT, /* Option < & str > */
	"payloads" jsonb[], /* :: std :: option :: Option < Array < '_, RawJsonb > > */
	"keys" TEXT[] DEFAULT NULL, /* :: std :: option :: Option < Array < '_, & str > > */
	"headers" jsonb[] DEFAULT NULL, /* :: std :: option :: Option < Array < '_, RawJsonb > > */
	"deliver_at" timestamp with time zone DEFAULT NULL, /* Option < TimestampWithTimeZone > */
	"max_attempts" INT DEFAULT NULL, /* Option < i32 > */
	"dedup_keys" TEXT[] DEFAULT NULL, /* :: std :: option :: Option < Array < '_, & str > > */
	"dedup_window" interval DEFAULT NULL /* Option < Interval > */
) RETURNS bigint[] /* OutboxResult < Vec < i64 > > */
VOLATILE SECURITY DEFINER PARALLEL UNSAFE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'enqueue_batch_with_dedup_wrapper';
REVOKE ALL ON FUNCTION outbox.enqueue(text, jsonb, text, jsonb, timestamptz, integer, text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.enqueue_batch(text, jsonb[], text[], jsonb[], timestamptz, integer, text[], interval) FROM PUBLIC;

DO $$
DECLARE
    r regrole;
BEGIN
    FOR r IN
        SELECT DISTINCT a.grantee::regrole
        FROM pg_catalog.pg_proc AS p,
             LATERAL pg_catalog.aclexplode(p.proacl) AS a
        WHERE p.oid IN ('outbox.enqueue(text, jsonb, text, jsonb, timestamptz, integer)'::regprocedure,
                        'outbox.enqueue_batch(text, jsonb[], text[], jsonb[], timestamptz, integer)'::regprocedure)
          AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0
        ORDER BY 1
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION outbox.enqueue(text, jsonb, text, jsonb, timestamptz, integer, text, interval) TO %s', r);
        EXECUTE format('GRANT EXECUTE ON FUNCTION outbox.enqueue_batch(text, jsonb[], text[], jsonb[], timestamptz, integer, text[], interval) TO %s', r);
    END LOOP;
END;
$$;

DROP FUNCTION outbox.enqueue(text, jsonb, text, jsonb, timestamptz, integer);
DROP FUNCTION outbox.enqueue_batch(text, jsonb[], text[], jsonb[], timestamptz, integer);

-- The grant functions as sql/grants.sql has them now.
CREATE OR REPLACE FUNCTION outbox.grant_relay(role regrole) RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT outbox._grant_functions(role, ARRAY[
        'claim', 'complete', 'complete_batch', 'fail', 'release', 'release_batch',
        'extend', 'extend_batch', 'doorbell_channel', 'doorbell_arm', 'doorbell_disarm', 'stats',
        'cleanup'])
$$;

COMMENT ON FUNCTION outbox.grant_relay(regrole) IS
    'Let a role relay messages: claim, complete, fail, release, extend, the doorbell, stats and cleanup.';

CREATE OR REPLACE FUNCTION outbox.grant_admin(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM outbox._grant_functions(role, ARRAY[
        'enqueue', 'enqueue_batch',
        'claim', 'complete', 'complete_batch', 'fail', 'release', 'release_batch',
        'extend', 'extend_batch', 'doorbell_channel', 'doorbell_arm', 'doorbell_disarm', 'stats',
        'cleanup', 'blocked_keys', 'list_messages', 'get_message', 'list_dead', 'requeue_dead', 'requeue_dead_topic', 'purge_dead', 'purge_dead_topic',
        'rotate', 'set_partitions']);
    EXECUTE format('GRANT SELECT ON outbox.messages, outbox.dead_letters, outbox.side, outbox.log,'
                   ' outbox.partitions, outbox.segments, outbox.dedup, outbox.published TO %s', role);
END;
$$;

-- Relays and admins of 0.2.0 (whoever may complete) get cleanup(); admins
-- (whoever may read the dead letters) get what grant_admin adds: the new
-- functions for looking and SELECT on the new tables.
DO $$
DECLARE
    r regrole;
BEGIN
    FOR r IN
        SELECT DISTINCT a.grantee::regrole
        FROM pg_catalog.pg_proc AS p,
             LATERAL pg_catalog.aclexplode(p.proacl) AS a
        WHERE p.oid = 'outbox.complete(bigint, uuid)'::regprocedure AND a.privilege_type = 'EXECUTE'
          AND a.grantee <> p.proowner AND a.grantee <> 0
        ORDER BY 1
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION outbox.cleanup(integer) TO %s', r);
    END LOOP;
    FOR r IN
        SELECT DISTINCT a.grantee::regrole
        FROM pg_catalog.pg_class AS c,
             LATERAL pg_catalog.aclexplode(c.relacl) AS a
        WHERE c.oid = 'outbox.dead_letters'::regclass AND a.privilege_type = 'SELECT'
          AND a.grantee <> c.relowner AND a.grantee <> 0
        ORDER BY 1
    LOOP
        EXECUTE format('GRANT SELECT ON outbox.dedup, outbox.published TO %s', r);
        EXECUTE format('GRANT EXECUTE ON FUNCTION outbox.list_messages(text, text, text, bigint, integer, text, text) TO %s', r);
        EXECUTE format('GRANT EXECUTE ON FUNCTION outbox.get_message(bigint) TO %s', r);
    END LOOP;
END;
$$;
