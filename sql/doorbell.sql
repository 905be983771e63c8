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
--     SELECT outbox.doorbell_arm();      -- take K (waits for silent producers)
--     claim once more                    -- the re-check; if rows: disarm, go on
--     wait for a notification or the poll interval
--     SELECT outbox.doorbell_disarm();   -- release K before working
--
-- K = 122550254464888 (the bytes of 'outbox'); the notification carries no
-- data (any role can LISTEN on any channel).

CREATE FUNCTION outbox.doorbell_channel() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 'outbox_doorbell'::text $$;

COMMENT ON FUNCTION outbox.doorbell_channel() IS
    'The channel the doorbell trigger NOTIFYs while a relay sleeps: LISTEN on it.';

CREATE FUNCTION outbox.doorbell_arm(wait interval DEFAULT '5 seconds') RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k constant bigint := 122550254464888;
    held boolean;
    armed boolean;
    previous text;
BEGIN
    IF wait IS NULL OR wait < interval '0' THEN
        RAISE EXCEPTION 'wait must be a non-negative interval'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass how long to wait for producers that are committing, e.g. ''5 seconds''.';
    END IF;
    -- Arming twice would need two disarms; make a second arm a no-op.
    SELECT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
          AND mode = 'ExclusiveLock'
          AND classid = (k >> 32)::oid AND objid = (k & 4294967295)::oid AND objsubid = 1
    ) INTO held;
    IF held THEN
        RETURN true;
    END IF;
    -- Waiting here means a producer that stayed silent is still committing;
    -- its commit makes its messages visible to the re-check that follows.
    -- lock_timeout 0 would mean "wait forever", hence the 1 ms floor.
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
    RETURN armed;
END;
$$;

COMMENT ON FUNCTION outbox.doorbell_arm(interval) IS
    'Announce that this session is about to sleep (LISTEN first, re-check after). Returns false if producers kept it waiting longer than wait: claim again and retry.';

CREATE FUNCTION outbox.doorbell_disarm() RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k constant bigint := 122550254464888;
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
          AND mode = 'ExclusiveLock'
          AND classid = (k >> 32)::oid AND objid = (k & 4294967295)::oid AND objsubid = 1
    ) THEN
        RETURN false;
    END IF;
    RETURN pg_advisory_unlock(k);
END;
$$;

COMMENT ON FUNCTION outbox.doorbell_disarm() IS
    'End a sleep started with outbox.doorbell_arm(); producers go silent again. Returns false if this session was not armed.';

-- The trigger function does no name lookups, but it is pinned like every
-- other function so that nothing on a caller's search_path can matter.
ALTER FUNCTION outbox._doorbell() SET search_path = pg_catalog, pg_temp;

CREATE TRIGGER doorbell
    AFTER INSERT ON outbox.messages
    FOR EACH STATEMENT
    EXECUTE FUNCTION outbox._doorbell();
