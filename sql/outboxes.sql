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
