-- The states of an unfinished message, by name (state.sql is loaded before
-- admin.sql and inspect.sql, which use it).

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
