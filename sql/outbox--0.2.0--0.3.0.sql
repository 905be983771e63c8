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
-- * Named outboxes: outbox.outboxes, create_outbox(), drop_outbox() and
--   their helpers (sql/outboxes.sql); the grant functions take an outbox.
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

-- Named outboxes (sql/outboxes.sql, copied below) and the grant functions
-- with their `outbox` argument (sql/grants.sql): a new argument cannot be
-- added with CREATE OR REPLACE, so the 0.2.0 grant functions are dropped
-- and created again. Nobody but the owner could execute them, so no grant
-- is lost.
DROP FUNCTION outbox.grant_producer(regrole);
DROP FUNCTION outbox.grant_relay(regrole);
DROP FUNCTION outbox.grant_admin(regrole);
DROP FUNCTION outbox.revoke_all(regrole);
DROP FUNCTION outbox._grant_functions(regrole, text[]);

CREATE FUNCTION outbox."_check_outbox_name"(
	"name" TEXT
) RETURNS VOID
IMMUTABLE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'check_outbox_name_wrapper';

-- Named outboxes: one database, several isolated outboxes (one per service),
-- each with its own tables, write contention, rotation, doorbell and grants.
--
-- A named outbox 'billing' is the schema outbox_billing holding a copy of
-- every per-outbox object of the default outbox (schema outbox): the log and
-- its segments, the partitions, the side table, dead letters, dedup keys,
-- the history, the doorbell gate, the messages view and the API functions.
-- Its functions are the same code (the C functions bind the same symbols;
-- the SQL and PL/pgSQL bodies are the default ones with outbox.<object>
-- renamed to outbox_billing.<object>), so
--
--   SELECT outbox_billing.enqueue('invoice.sent', '{"id": 7}');
--   SELECT * FROM outbox_billing.claim('relay-1');
--
-- behave exactly as outbox.enqueue and outbox.claim do, on billing's tables.
--
-- Why a schema per outbox, and not an `outbox => 'billing'` argument:
-- * Privileges. EXECUTE is granted per function; a SECURITY DEFINER
--   function cannot tell which outbox its caller may use. With one schema
--   per outbox a billing producer holds USAGE on outbox_billing and EXECUTE
--   on its enqueue, and nothing in schema outbox or outbox_accounting.
-- * Contention. Each outbox has its own log, partitions and gate, so two
--   busy services never lock each other's rows (docs/bench measures it).
-- * The default outbox's calls stay exactly as they are.
--
-- How a C function knows its outbox: PostgreSQL passes the called
-- function's OID; its schema is the outbox (outbox_ext/src/outboxes.rs), and
-- every kept plan is prepared per schema with outbox._in_outbox() applied.
--
-- Shared by all outboxes (outbox._shared_names()): the message id sequence
-- (ids are unique in the database), the GUCs, the registry below, the
-- doorbell trigger function, the pure helpers, and the functions that
-- manage outboxes and grants. Not extension members: pg_dump dumps an
-- outbox's schema as ordinary objects and the registry as configuration,
-- and DROP EXTENSION needs every named outbox dropped first (its triggers
-- depend on outbox._doorbell).

CREATE TABLE outbox.outboxes (
    name       text        NOT NULL,
    schema     name        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),
    CONSTRAINT outboxes_pkey PRIMARY KEY (name),
    CONSTRAINT outboxes_schema_key UNIQUE (schema)
);

COMMENT ON TABLE outbox.outboxes IS
    'The named outboxes (outbox.create_outbox): name and schema. The default outbox is schema outbox and has no row.';

SELECT pg_catalog.pg_extension_config_dump('outbox.outboxes', '');

-- The objects of schema outbox that every outbox shares: never cloned, and
-- never renamed in a cloned body. Everything else in schema outbox is per
-- outbox, so a new table or API function is cloned without a change here;
-- a new shared helper may be added here (cloning it would be harmless,
-- only wasteful).
CREATE FUNCTION outbox._shared_names() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY[
        -- relations
        'message_id', 'outboxes', 'outboxes_pkey', 'outboxes_schema_key',
        -- the trigger function (looks up its gate by the table's schema)
        '_doorbell',
        -- pure helpers and the clock
        '_window_snapshot', '_state', '_max_rows', '_check_state', '_issued_id',
        '_next_xid', '_now', '_retention',
        -- outboxes and grants
        '_shared_names', '_cloned_names', '_in_outbox', '_check_outbox_name',
        '_outbox_schema', '_clone_functions', 'create_outbox', 'drop_outbox',
        '_refresh_outboxes', '_grant_functions', 'grant_producer', 'grant_relay',
        'grant_admin', 'revoke_all']::text[]
$$;

-- The per-outbox names: every table, sequence, view and function of schema
-- outbox that is not shared.
CREATE FUNCTION outbox._cloned_names() RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.array_agg(DISTINCT n.name ORDER BY n.name)
    FROM (SELECT c.relname::text AS name FROM pg_catalog.pg_class AS c
          WHERE c.relnamespace = 'outbox'::regnamespace AND c.relkind IN ('r', 'p', 'S', 'v')
          UNION ALL
          SELECT p.proname::text FROM pg_catalog.pg_proc AS p
          WHERE p.pronamespace = 'outbox'::regnamespace) AS n
    WHERE n.name <> ALL (outbox._shared_names())
$$;

-- The rename rule, in one place: a statement or body written for the
-- default outbox, made to work on the outbox in schema `target`.
--   outbox.<per-outbox object>  ->  target.<object> (whole words only, so
--                                   outbox.log_segment is not outbox.log)
--   'outbox.%I' (rotation's dynamic segment names) -> 'target.%I'
--   'outbox_doorbell' (doorbell_channel)            -> 'target_doorbell'
-- Used for every cloned function and view, and by the C functions for their
-- kept plans (plans.rs). Object names are [a-z0-9_] and target is a
-- validated outbox schema, so nothing here needs quoting.
CREATE FUNCTION outbox._in_outbox(sql text, target name) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.replace(pg_catalog.replace(
               pg_catalog.regexp_replace(
                   sql,
                   '\moutbox\.(' || pg_catalog.array_to_string(outbox._cloned_names(), '|') || ')\M',
                   target || '.\1', 'g'),
               'outbox.%I', target || '.%I'),
           '''outbox_doorbell''', '''' || target || '_doorbell''')
$$;

-- The schema of an outbox: NULL is the default outbox (schema outbox).
CREATE FUNCTION outbox._outbox_schema(outbox text) RETURNS name
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s name;
BEGIN
    IF outbox IS NULL THEN
        RETURN 'outbox';
    END IF;
    SELECT o.schema INTO s FROM outbox.outboxes AS o WHERE o.name = outbox;
    IF s IS NULL THEN
        RAISE EXCEPTION 'there is no outbox named "%"', outbox
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with SELECT outbox.create_outbox(''' || outbox || '''); the existing ones are in outbox.outboxes.';
    END IF;
    RETURN s;
END;
$$;

-- (Re)create the per-outbox functions of schema `target` from the default
-- outbox's, renamed. CREATE OR REPLACE keeps each function's grants, so
-- _refresh_outboxes() can run it again after an upgrade.
CREATE FUNCTION outbox._clone_functions(target name) RETURNS void
LANGUAGE plpgsql VOLATILE
-- A SQL function's body is checked when it is created; the functions and
-- the messages view refer to each other, so bodies are checked when called.
SET check_function_bodies = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f record;
BEGIN
    -- Only into a registered outbox's schema: never over the default
    -- outbox's functions, nor into any other schema.
    IF (SELECT count(*) FROM outbox.outboxes AS o WHERE o.schema = target) = 0 THEN
        RAISE EXCEPTION 'schema % is not a named outbox''s', target
            USING ERRCODE = 'invalid_parameter_value', HINT = 'The named outboxes are in outbox.outboxes.';
    END IF;
    FOR f IN
        SELECT p.oid, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid) AS args,
               pg_catalog.obj_description(p.oid, 'pg_proc') AS about
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'outbox'::regnamespace
          AND p.proname <> ALL (outbox._shared_names())
        ORDER BY p.proname, p.oid
    LOOP
        EXECUTE outbox._in_outbox(pg_catalog.pg_get_functiondef(f.oid), target);
        IF f.about IS NOT NULL THEN
            EXECUTE format('COMMENT ON FUNCTION %I.%I(%s) IS %L', target, f.proname, f.args,
                           outbox._in_outbox(f.about, target));
        END IF;
    END LOOP;
    EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM PUBLIC', target);
END;
$$;

-- outbox.create_outbox('billing'): a new, empty outbox in schema
-- outbox_billing, with the default number of log partitions (16, as a fresh
-- install: change it with outbox_billing.set_partitions(n)). Only the
-- extension owner or a superuser can create one (no role is granted it);
-- its objects belong to the extension owner, like the default outbox's.
CREATE FUNCTION outbox.create_outbox(name text) RETURNS name
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET check_function_bodies = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target name;
    r record;
BEGIN
    PERFORM outbox._check_outbox_name(name);
    target := 'outbox_' || name;
    IF EXISTS (SELECT 1 FROM outbox.outboxes AS o WHERE o.name = create_outbox.name) THEN
        RAISE EXCEPTION 'outbox "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use it as schema ' || target || ', or drop it first with outbox.drop_outbox(''' || name || ''').';
    END IF;
    IF pg_catalog.to_regnamespace(target) IS NOT NULL THEN
        RAISE EXCEPTION 'schema % already exists and is not an outbox', target
            USING ERRCODE = 'duplicate_schema',
                  HINT = 'Pick another outbox name, or rename that schema.';
    END IF;
    EXECUTE format('CREATE SCHEMA %I', target);
    INSERT INTO outbox.outboxes (name, schema) VALUES (name, target);

    FOR r IN
        SELECT c.relname, s.seqtypid::regtype AS typ, s.seqincrement, s.seqmin, s.seqmax, s.seqstart,
               s.seqcache, s.seqcycle
        FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_sequence AS s ON s.seqrelid = c.oid
        WHERE c.relnamespace = 'outbox'::regnamespace AND c.relkind = 'S'
          AND c.relname <> ALL (outbox._shared_names())
    LOOP
        EXECUTE format('CREATE SEQUENCE %I.%I AS %s INCREMENT %s MINVALUE %s MAXVALUE %s START %s CACHE %s %s',
                       target, r.relname, r.typ, r.seqincrement, r.seqmin, r.seqmax, r.seqstart,
                       r.seqcache, CASE WHEN r.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END);
    END LOOP;
    -- The log layout of a fresh install: 16 partitions, segment 0 current
    -- (schema.sql explains the encoding).
    PERFORM pg_catalog.setval(format('%I.log_segment', target), 16 * 3221225472, true);

    -- Tables before their partitions; LIKE ... INCLUDING ALL copies columns,
    -- defaults, checks, indexes, compression, storage and comments.
    FOR r IN
        SELECT c.oid, c.relname, c.relkind, c.reloptions, parent.relname AS parent,
               pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound,
               CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END AS partkey
        FROM pg_catalog.pg_class AS c
        LEFT JOIN pg_catalog.pg_inherits AS i ON i.inhrelid = c.oid
        LEFT JOIN pg_catalog.pg_class AS parent ON parent.oid = i.inhparent
        WHERE c.relnamespace = 'outbox'::regnamespace AND c.relkind IN ('r', 'p')
          AND c.relname <> ALL (outbox._shared_names())
        ORDER BY c.relispartition, c.relname
    LOOP
        IF r.parent IS NULL THEN
            EXECUTE format('CREATE TABLE %I.%I (LIKE outbox.%I INCLUDING ALL)%s%s', target, r.relname,
                           r.relname,
                           CASE WHEN r.partkey IS NOT NULL THEN ' PARTITION BY ' || r.partkey ELSE '' END,
                           CASE WHEN r.reloptions IS NOT NULL
                                THEN ' WITH (' || pg_catalog.array_to_string(r.reloptions, ', ') || ')'
                                ELSE '' END);
        ELSE
            EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I %s%s', target, r.relname, target,
                           r.parent, r.bound,
                           CASE WHEN r.reloptions IS NOT NULL
                                THEN ' WITH (' || pg_catalog.array_to_string(r.reloptions, ', ') || ')'
                                ELSE '' END);
        END IF;
        IF pg_catalog.obj_description(r.oid, 'pg_class') IS NOT NULL THEN
            EXECUTE format('COMMENT ON TABLE %I.%I IS %L', target, r.relname,
                           outbox._in_outbox(pg_catalog.obj_description(r.oid, 'pg_class'), target));
        END IF;
    END LOOP;

    PERFORM outbox._clone_functions(target);

    FOR r IN
        SELECT c.oid, c.relname FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'outbox'::regnamespace AND c.relkind = 'v'
          AND c.relname <> ALL (outbox._shared_names())
        ORDER BY c.relname
    LOOP
        EXECUTE format('CREATE VIEW %I.%I AS %s', target, r.relname,
                       outbox._in_outbox(pg_catalog.pg_get_viewdef(r.oid), target));
        IF pg_catalog.obj_description(r.oid, 'pg_class') IS NOT NULL THEN
            EXECUTE format('COMMENT ON VIEW %I.%I IS %L', target, r.relname,
                           outbox._in_outbox(pg_catalog.obj_description(r.oid, 'pg_class'), target));
        END IF;
    END LOOP;

    -- The doorbell triggers (on the parent log, not its partitions' clones).
    FOR r IN
        SELECT t.oid FROM pg_catalog.pg_trigger AS t
        JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
        WHERE c.relnamespace = 'outbox'::regnamespace AND NOT t.tgisinternal AND t.tgparentid = 0
          AND c.relname <> ALL (outbox._shared_names())
        ORDER BY t.oid
    LOOP
        EXECUTE outbox._in_outbox(pg_catalog.pg_get_triggerdef(r.oid), target);
    END LOOP;

    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM PUBLIC', target);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM PUBLIC', target);
    RETURN target;
END;
$$;

COMMENT ON FUNCTION outbox.create_outbox(text) IS
    'Create the named outbox `name` in schema outbox_<name>: its own tables, doorbell and grants; call outbox_<name>.enqueue() etc.';

-- outbox.drop_outbox('billing'): drop the outbox and everything in it.
-- Refused while it holds unfinished messages or dead letters, unless
-- force => true: the outbox must never lose a message by accident. Waits
-- for producers and relays that use it (their locks), so stop its relays
-- first.
CREATE FUNCTION outbox.drop_outbox(name text, force boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
-- DROP SCHEMA ... CASCADE would list every object it drops as a NOTICE.
SET client_min_messages = warning
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target name;
    unfinished bigint;
    dead bigint;
BEGIN
    IF name IS NULL OR force IS NULL THEN
        RAISE EXCEPTION 'name and force must not be NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass the outbox''s name, e.g. ''billing''.';
    END IF;
    target := outbox._outbox_schema(name);
    IF NOT force THEN
        EXECUTE format('SELECT (SELECT count(*) FROM %I.messages), (SELECT count(*) FROM %I.dead_letters)',
                       target, target)
            INTO unfinished, dead;
        IF unfinished + dead > 0 THEN
            RAISE EXCEPTION 'outbox "%" still holds % unfinished message(s) and % dead letter(s)',
                name, unfinished, dead
                USING ERRCODE = 'object_in_use',
                      HINT = 'Let its relays deliver them and purge the dead letters (' || target
                             || '.purge_dead), or pass force => true to drop them too.';
        END IF;
    END IF;
    EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', target);
    DELETE FROM outbox.outboxes AS o WHERE o.name = drop_outbox.name;
END;
$$;

COMMENT ON FUNCTION outbox.drop_outbox(text, boolean) IS
    'Drop a named outbox; refused while it holds unfinished messages or dead letters unless force => true.';

-- After an upgrade script changed per-outbox functions: re-create them in
-- every named outbox (docs/upgrading.md).
CREATE FUNCTION outbox._refresh_outboxes() RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o record;
    n integer := 0;
BEGIN
    FOR o IN SELECT x.schema FROM outbox.outboxes AS x ORDER BY x.name LOOP
        PERFORM outbox._clone_functions(o.schema);
        n := n + 1;
    END LOOP;
    RETURN n;
END;
$$;

CREATE FUNCTION outbox._grant_functions(role regrole, names text[], outbox text DEFAULT NULL)
RETURNS name
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target name;
    f regprocedure;
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass an existing role name, e.g. ''app_writer''.';
    END IF;
    target := outbox._outbox_schema(outbox);
    -- format's %s of a regrole/regprocedure is its quoted name, %I quotes
    -- the schema: no string is pasted into the statement unquoted.
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %s', target, role);
    FOR f IN
        SELECT p.oid::regprocedure
        FROM pg_proc AS p
        WHERE p.pronamespace = target::regnamespace AND p.proname = ANY (names)
        ORDER BY 1
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', f, role);
    END LOOP;
    RETURN target;
END;
$$;

CREATE FUNCTION outbox.grant_producer(role regrole, outbox text DEFAULT NULL) RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT outbox._grant_functions(role, ARRAY['enqueue', 'enqueue_batch'], outbox) $$;

COMMENT ON FUNCTION outbox.grant_producer(regrole, text) IS
    'Let a role enqueue messages into one outbox (NULL: the default), and nothing else: it cannot read, claim or finish them.';

CREATE FUNCTION outbox.grant_relay(role regrole, outbox text DEFAULT NULL) RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT outbox._grant_functions(role, ARRAY[
        'claim', 'complete', 'complete_batch', 'fail', 'release', 'release_batch',
        'extend', 'extend_batch', 'doorbell_channel', 'doorbell_arm', 'doorbell_disarm', 'stats',
        'cleanup'], outbox)
$$;

COMMENT ON FUNCTION outbox.grant_relay(regrole, text) IS
    'Let a role relay one outbox''s messages (NULL: the default): claim, complete, fail, release, extend, the doorbell, stats and cleanup.';

CREATE FUNCTION outbox.grant_admin(role regrole, outbox text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target name;
BEGIN
    target := outbox._grant_functions(role, ARRAY[
        'enqueue', 'enqueue_batch',
        'claim', 'complete', 'complete_batch', 'fail', 'release', 'release_batch',
        'extend', 'extend_batch', 'doorbell_channel', 'doorbell_arm', 'doorbell_disarm', 'stats',
        'cleanup', 'blocked_keys', 'list_messages', 'get_message', 'list_dead', 'requeue_dead', 'requeue_dead_topic', 'purge_dead', 'purge_dead_topic',
        'rotate', 'set_partitions'], outbox);
    EXECUTE format('GRANT SELECT ON %1$I.messages, %1$I.dead_letters, %1$I.side, %1$I.log,'
                   ' %1$I.partitions, %1$I.segments, %1$I.dedup, %1$I.published TO %2$s', target, role);
END;
$$;

COMMENT ON FUNCTION outbox.grant_admin(regrole, text) IS
    'Let a role operate one outbox (NULL: the default): everything a producer and a relay can do, dead letters, blocked_keys, and SELECT on its tables.';

CREATE FUNCTION outbox.revoke_all(role regrole, outbox text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target name;
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass an existing role name, e.g. ''app_writer''.';
    END IF;
    -- NULL takes back everything, in every outbox: the call that must leave
    -- a role with nothing should not need a list of outboxes.
    FOR target IN
        SELECT outbox._outbox_schema(revoke_all.outbox) WHERE revoke_all.outbox IS NOT NULL
        UNION ALL
        SELECT s.x FROM (SELECT 'outbox'::name AS x UNION ALL SELECT o.schema FROM outbox.outboxes AS o) AS s
        WHERE revoke_all.outbox IS NULL
    LOOP
        EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM %s', target, role);
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %s', target, role);
        -- Tables do not cover sequences: a hand-granted USAGE on message_id
        -- would survive, and setval() by oid needs no schema USAGE.
        EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM %s', target, role);
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %s', target, role);
    END LOOP;
END;
$$;

COMMENT ON FUNCTION outbox.revoke_all(regrole, text) IS
    'Take back what grant_producer, grant_relay or grant_admin gave a role: on one outbox, or (NULL) on every outbox.';

-- The grant functions themselves were created after the REVOKE above.
REVOKE ALL ON FUNCTION outbox._grant_functions(regrole, text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.grant_producer(regrole, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.grant_relay(regrole, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.grant_admin(regrole, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.revoke_all(regrole, text) FROM PUBLIC;
REVOKE ALL ON TABLE outbox.outboxes FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox."_check_outbox_name"(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox._shared_names() FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox._cloned_names() FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox._in_outbox(text, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox._outbox_schema(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox._clone_functions(name) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.create_outbox(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.drop_outbox(text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox._refresh_outboxes() FROM PUBLIC;

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
