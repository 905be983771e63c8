-- outbox.claim(): lease up to batch_size ready messages, oldest first, to
-- owner for lease (NULL: outbox.default_lease). Every row of one call shares
-- one lease_token; finish them with complete / fail / release / extend.
-- The work is outbox._claim() (api/claim.rs); this wrapper is what callers
-- and grants see.
--
-- Why a PL/pgSQL wrapper:
-- * A set-returning C function is called once per row it returns, and
--   PostgreSQL applies the function's SET clauses (and SECURITY DEFINER) on
--   every one of those calls: with them on the C function, 15 to 20% of a
--   claim of 1000 went to setting and restoring GUCs (measured with perf).
--   A PL/pgSQL function returns its rows in one call, so the settings below
--   are made once per claim. _claim() itself has none and only the owner may
--   execute it.
-- * enable_bitmapscan = off: autovacuum is off on the log's segments, so
--   they have no statistics, a window's range is estimated at a few rows,
--   and the planner read the whole range with a bitmap scan and sorted it
--   to return the first batch: 23 ms per claim of 1000 on a 20k-row window,
--   against 2.5 ms walking the (part, id) index in order (measured). A
--   bitmap scan also cannot stop at the first row an EXISTS needs. The
--   setting counts when a statement is planned, and claim()'s statements
--   are only ever planned inside claim().
-- * plan_cache_mode = force_generic_plan: claim_side.sql was planned afresh
--   on every call (its custom plan always looked cheaper), 0.57 ms a time,
--   twice per claim (pg_stat_statements.track_planning).
-- * jit = off: claim()'s statements are index probes of a few rows, but
--   their estimates follow the partitions table's size, which a held
--   snapshot bloats (2181 pages for 16 rows, W4), and past jit_above_cost
--   every execution compiles again: 324 ms of JIT for a 2 ms statement
--   (EXPLAIN ANALYZE of partitions_with_work.sql). A cached plan is
--   compiled on every execution, so nothing here ever gains from it.
CREATE FUNCTION outbox.claim(
    owner text,
    batch_size integer DEFAULT 100,
    lease interval DEFAULT NULL,
    topics text[] DEFAULT NULL
) RETURNS TABLE (
    id bigint,
    topic text,
    key text,
    payload jsonb,
    headers jsonb,
    attempt integer,
    lease_token uuid,
    lease_expires_at timestamptz,
    created_at timestamptz
)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $$
BEGIN
    RETURN QUERY SELECT c.* FROM outbox._claim($1, $2, $3, $4) AS c;
END;
$$;
