-- The doorbell: wake a sleeping relay when messages arrive, and cost (almost)
-- nothing while no relay sleeps.
--
-- A per-row NOTIFY made single-row inserts 5.2x slower on this project's
-- machines: NOTIFY takes a cluster-wide lock from pre-commit until after the
-- commit flush, serialising committers. So the trigger (outbox._doorbell, in
-- Rust) rings only when a relay is asleep:
--
--   producer (trigger, once per INSERT statement):
--     IF NOT pg_try_advisory_xact_lock_shared(K) THEN NOTIFY outbox_doorbell
--   sleeping relay: holds K exclusively (session level) while it waits.
--
-- The producer's shared lock lives until its transaction ends, so when a
-- relay gets K it knows every producer that stayed silent has committed or
-- rolled back: a re-check (claim) sees their messages. Producers that come
-- later find K taken (or wanted) and ring. Sleep protocol for any relay:
--
--   LISTEN outbox_doorbell;              -- once per connection
--   loop:
--     claim until nothing is returned
--     SELECT outbox.doorbell_arm();      -- 'armed', 'covered' or 'busy'
--       busy: go back to claiming (a producer is slow to commit)
--     claim once more                    -- the re-check; if rows: disarm, go on
--     wait for a notification or the poll interval
--     SELECT outbox.doorbell_disarm(wake_others => <not woken by a notification>);
--
-- Only one session can hold K. A second relay that arms while one is armed
-- gets 'covered': the armed relay's K already guarantees that silent
-- producers have finished and later ones ring, and NOTIFY reaches every
-- listener. When the armed relay disarms without having been rung (poll
-- timeout, shutdown) it rings once itself so a covered relay re-arms.
--
-- The doorbell rings on INSERT only. Retries and scheduled messages falling
-- due, and leases expiring, are found by the relay's poll interval.
--
-- K = 122550254464888 (the bytes of 'outbox'); the notification carries no
-- data (any role can LISTEN on any channel).

CREATE FUNCTION outbox.doorbell_channel() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 'outbox_doorbell'::text $$;

COMMENT ON FUNCTION outbox.doorbell_channel() IS
    'The channel the doorbell trigger NOTIFYs while a relay sleeps: LISTEN on it.';

CREATE FUNCTION outbox._doorbell_holder() RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The backend that holds the doorbell (K) exclusively: an armed relay.
    SELECT l.pid FROM pg_locks AS l
    WHERE l.locktype = 'advisory' AND l.granted AND l.mode = 'ExclusiveLock'
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = (122550254464888 >> 32)::oid
      AND l.objid = (122550254464888 & 4294967295)::oid
      AND l.objsubid = 1
    LIMIT 1
$$;

-- SECURITY DEFINER so relays need no access to the helper above; the
-- advisory lock belongs to the session whoever the user is.
CREATE FUNCTION outbox.doorbell_arm(wait interval DEFAULT '5 seconds') RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k constant bigint := 122550254464888;
    holder integer;
    previous text;
    armed boolean;
BEGIN
    IF wait IS NULL THEN
        RAISE EXCEPTION 'wait must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass how long to wait for producers that are committing, e.g. ''5 seconds''.';
    END IF;
    IF wait < interval '0' THEN
        RAISE EXCEPTION 'wait must be a non-negative interval'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass how long to wait for producers that are committing, e.g. ''5 seconds''.';
    END IF;
    holder := outbox._doorbell_holder();
    IF holder = pg_backend_pid() THEN
        RETURN 'armed';                      -- arming twice is a no-op
    END IF;
    IF pg_try_advisory_lock(k) THEN
        RETURN 'armed';
    END IF;
    IF holder IS NOT NULL THEN
        -- Another relay is armed: every silent producer had finished before
        -- it got K, and later producers ring for everyone listening.
        RETURN 'covered';
    END IF;
    -- Producers that stayed silent are still committing; their commit makes
    -- their messages visible to the re-check that follows. lock_timeout 0
    -- would mean "wait forever", hence the 1 ms floor.
    previous := current_setting('lock_timeout');
    PERFORM set_config('lock_timeout',
        greatest((extract(epoch FROM wait) * 1000)::bigint, 1)::text || 'ms', true);
    BEGIN
        PERFORM pg_advisory_lock(k);
        armed := true;
    EXCEPTION WHEN lock_not_available THEN
        armed := false;
    END;
    PERFORM set_config('lock_timeout', previous, true);
    IF armed THEN
        RETURN 'armed';
    ELSIF outbox._doorbell_holder() IS NOT NULL THEN
        RETURN 'covered';
    END IF;
    RETURN 'busy';
END;
$$;

COMMENT ON FUNCTION outbox.doorbell_arm(interval) IS
    'Announce that this session is about to sleep (LISTEN first, re-check after). armed: producers now ring. covered: another relay is armed and its rings reach you. busy: producers kept you waiting longer than wait; claim again and retry.';

CREATE FUNCTION outbox.doorbell_disarm(wake_others boolean DEFAULT true) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF wake_others IS NULL THEN
        RAISE EXCEPTION 'wake_others must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass false when a notification woke you (the others got it too), true otherwise.';
    END IF;
    IF outbox._doorbell_holder() IS DISTINCT FROM pg_backend_pid() THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_unlock(122550254464888);
    -- Relays that are 'covered' by us sleep on our rings; if we were not
    -- woken by a ring ourselves (poll timeout, shutdown), wake them so one of
    -- them arms in our place.
    IF wake_others THEN
        PERFORM pg_notify('outbox_doorbell', '');
    END IF;
    RETURN true;
END;
$$;

COMMENT ON FUNCTION outbox.doorbell_disarm(boolean) IS
    'End a sleep started with outbox.doorbell_arm(); producers go silent again. wake_others => true (default) rings once so covered relays re-arm. Returns false if this session was not armed.';

-- The trigger function does no name lookups, but it is pinned like every
-- other function so that nothing on a caller's search_path can matter.
ALTER FUNCTION outbox._doorbell() SET search_path = pg_catalog, pg_temp;

CREATE TRIGGER doorbell
    AFTER INSERT ON outbox.messages
    FOR EACH STATEMENT
    EXECUTE FUNCTION outbox._doorbell();
