-- The doorbell: wake a sleeping relay when messages arrive, and cost (almost)
-- nothing while no relay sleeps.
--
-- A per-row NOTIFY made single-row inserts 5.2x slower on this project's
-- machines: NOTIFY takes a cluster-wide lock from pre-commit until after the
-- commit flush, serialising committers. So the trigger (outbox._doorbell, in
-- Rust) rings only when a relay is asleep. The gate is the empty table
-- outbox.doorbell_gate:
--
--   producer (trigger, once per INSERT statement):
--     IF NOT ConditionalLockRelation(doorbell_gate, ROW EXCLUSIVE) THEN NOTIFY outbox_doorbell
--     (held to the end of the transaction; a fast-path lock while nobody sleeps)
--   sleeping relay: holds SHARE on doorbell_gate at session level while it waits.
--
-- SHARE conflicts with ROW EXCLUSIVE, and not with SHARE: any number of relays
-- can sleep at once, and producers never block each other. A relay gets SHARE
-- only once every producer that stayed silent has ended, and locks are
-- released after a commit is visible, so the relay's re-check (claim) sees
-- their messages; producers that come later cannot lock the gate and ring.
-- Sleep protocol for any relay, in any language:
--
--   LISTEN outbox_doorbell;              -- once per connection
--   loop:
--     claim until nothing is returned
--     SELECT outbox.doorbell_arm();      -- 'armed', or 'busy': a producer is
--                                        -- slow to commit, go back to claiming
--     claim once more                    -- the re-check; if rows: disarm, go on
--     wait for a notification or the poll interval
--     SELECT outbox.doorbell_disarm();   -- producers go silent again
--
-- The doorbell rings on INSERT only. Retries and scheduled messages falling
-- due, and leases expiring, are found by the relay's poll interval. The
-- notification carries no data (any role can LISTEN on any channel).
-- doorbell_arm and doorbell_disarm are in Rust (api/doorbell.rs): they call
-- the lock manager directly, because SQL has no session-level relation lock.

CREATE FUNCTION outbox.doorbell_channel() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 'outbox_doorbell'::text $$;

COMMENT ON FUNCTION outbox.doorbell_channel() IS
    'The channel the doorbell trigger NOTIFYs while a relay sleeps: LISTEN on it.';

-- The gate: producers lock it (conditional ROW EXCLUSIVE, fast path), sleeping
-- relays hold it (session SHARE). It never has rows. See api/doorbell.rs.
CREATE TABLE outbox.doorbell_gate ();

COMMENT ON TABLE outbox.doorbell_gate IS
    'Doorbell gate: sleeping relays hold a SHARE lock on it, producers NOTIFY only when they cannot lock it. No rows.';

-- The trigger function looks up outbox.doorbell_gate by schema and name, but
-- it is pinned like every other function so a caller's path never matters.
ALTER FUNCTION outbox._doorbell() SET search_path = pg_catalog, pg_temp;

-- On the log (every enqueue) and on the side table (requeued dead letters;
-- diverts and retries ring it too, harmlessly: only a sleeping relay hears).
CREATE TRIGGER doorbell
    AFTER INSERT ON outbox.log
    FOR EACH STATEMENT
    EXECUTE FUNCTION outbox._doorbell();

CREATE TRIGGER doorbell
    AFTER INSERT ON outbox.side
    FOR EACH STATEMENT
    EXECUTE FUNCTION outbox._doorbell();
