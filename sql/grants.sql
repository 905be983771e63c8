-- Privileges. PUBLIC gets nothing: no schema usage, no table access, no
-- EXECUTE. Roles get what their job needs through the functions below, and
-- the API functions run as the extension owner (SECURITY DEFINER, pinned
-- search_path), so no role ever needs a privilege on the tables themselves:
--
--   producer  enqueue, enqueue_batch. Cannot read, claim or finish anything.
--   relay     claim, complete, fail, release, extend, the doorbell, stats,
--             cleanup (dedup keys; the relay can run it on a timer).
--   admin     everything above plus dead letters, blocked_keys and SELECT on
--             the tables (to look, not to write).
--
-- Each grant is for one outbox: `outbox => NULL` is the default outbox
-- (schema outbox), `outbox => 'billing'` the named outbox in schema
-- outbox_billing (sql/outboxes.sql). A role granted on billing holds USAGE
-- on outbox_billing and EXECUTE on its functions, and nothing else: it
-- cannot write into or read another outbox.
--
-- The grant functions are not SECURITY DEFINER: only the extension owner (or
-- a superuser) can hand out these privileges.

REVOKE ALL ON SCHEMA outbox FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA outbox FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA outbox FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA outbox FROM PUBLIC;

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
