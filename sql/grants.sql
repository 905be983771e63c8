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
-- The grant functions are not SECURITY DEFINER: only the extension owner (or
-- a superuser) can hand out these privileges.

REVOKE ALL ON SCHEMA outbox FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA outbox FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA outbox FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA outbox FROM PUBLIC;

CREATE FUNCTION outbox._grant_functions(role regrole, names text[]) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f regprocedure;
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass an existing role name, e.g. ''app_writer''.';
    END IF;
    -- format's %s of a regrole/regprocedure is its quoted name: no string is
    -- pasted into the statement unquoted.
    EXECUTE format('GRANT USAGE ON SCHEMA outbox TO %s', role);
    FOR f IN
        SELECT p.oid::regprocedure
        FROM pg_proc AS p
        WHERE p.pronamespace = 'outbox'::regnamespace AND p.proname = ANY (names)
        ORDER BY 1
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', f, role);
    END LOOP;
END;
$$;

CREATE FUNCTION outbox.grant_producer(role regrole) RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT outbox._grant_functions(role, ARRAY['enqueue', 'enqueue_batch']) $$;

COMMENT ON FUNCTION outbox.grant_producer(regrole) IS
    'Let a role enqueue messages (and nothing else: it cannot read, claim or finish them).';

CREATE FUNCTION outbox.grant_relay(role regrole) RETURNS void
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

CREATE FUNCTION outbox.grant_admin(role regrole) RETURNS void
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

COMMENT ON FUNCTION outbox.grant_admin(regrole) IS
    'Let a role operate the outbox: everything a producer and a relay can do, dead letters, blocked_keys, and SELECT on the tables.';

CREATE FUNCTION outbox.revoke_all(role regrole) RETURNS void
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

COMMENT ON FUNCTION outbox.revoke_all(regrole) IS
    'Take back everything grant_producer, grant_relay or grant_admin gave a role.';

-- The grant functions themselves were created after the REVOKE above.
REVOKE ALL ON FUNCTION outbox._grant_functions(regrole, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.grant_producer(regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.grant_relay(regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.grant_admin(regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.revoke_all(regrole) FROM PUBLIC;
