-- Looking at single messages, wherever they are: outbox.list_messages() and
-- outbox.get_message(), for admins (grant_admin). Not on any hot path.
-- docs/sql-api.md, "list_messages, get_message".

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
