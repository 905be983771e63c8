-- outbox.claim(), the side table: lease up to $2 ready messages of
-- outbox.side to owner $1 until $3. The log's part of a claim is in
-- claim_partition.sql and window_*.sql; docs/storage.md has the whole claim.
-- $1 owner text, $2 batch_size integer, $3 lease_expires_at timestamptz, $4 topics text[]
-- (NULL = all), $5 lease_token uuid (one per claim() call), $6 now timestamptz,
-- $7 suspects boolean
--
-- Why this shape:
-- * Suspects ($7 = true) are rows whose previous lease expired: they may be
--   what killed their relay. api/claim.rs asks for one of them first, and a
--   claim that gets one returns it alone, so a poison message burns only its
--   own attempts, not its batch-mates'. Otherwise ($7 = false) suspects are
--   left out and the batch is the usual one.
-- * The candidates CTE is MATERIALIZED: `UPDATE ... WHERE id IN (SELECT ...
--   LIMIT n FOR UPDATE SKIP LOCKED)` may be re-executed by the planner and
--   lease more than n rows. Materialized, the LIMIT holds.
-- * SKIP LOCKED gives concurrent claimers disjoint sets without waiting.
-- * FOR UPDATE re-checks the row at lock time (EvalPlanQual), so a lease that
--   was extended, or a message completed, after our snapshot is not stolen.
-- * Per-key FIFO: a keyed message is a candidate only while no older message
--   with the same key is still in outbox.side (ready, scheduled, retrying
--   or leased). Dead letters have left the table, so they do not block.
-- * The attempt is counted here, at claim, not at fail(): a message that kills
--   its relay still runs out of attempts. A candidate whose lease expired on
--   its last attempt goes to outbox.dead_letters instead of being leased again,
--   its error text kept within the same 2 KiB cap as fail()'s.
-- * One lease token per call: the whole batch is finished with one token.
--   Rust makes it and passes it in, because a call whose candidates were all
--   buried runs this statement again (see api/claim.rs) with the same token.
-- * Buried rows come back too (buried = true) so the caller can tell "nothing
--   ready" from "only dead ones this time".
-- * The UPDATE and DELETE find their rows with `id = ANY (ARRAY(...))`, i.e.
--   primary-key probes. Joining the CTE instead let the planner hash-join a
--   sequential scan of the whole table: 51 ms per claim at a 20k backlog.
-- * No ORDER BY: outbox.claim() sorts the rows it returns by id itself, which
--   is cheaper than sorting the whole result here (about 10% of a claim of
--   1000 rows).
-- * "Now" ($6) and the lease's end ($3) come from Rust (clock.rs): the cap on
--   the lease is checked on the very timestamp stored here, and tests can
--   move the clock (outbox.test_clock_offset) instead of sleeping.
-- * The function pins search_path to pg_catalog, pg_temp, so operators and
--   functions here cannot be shadowed by objects in other schemas.
WITH candidates AS MATERIALIZED (
    SELECT m.id, m.attempt >= m.max_attempts AS exhausted
    FROM outbox.side AS m
    WHERE m.deliver_at <= $6::timestamptz
      AND (m.lease_expires_at IS NULL OR m.lease_expires_at <= $6::timestamptz)
      AND (m.lease_token IS NOT NULL) = $7::boolean
      AND ($4::text[] IS NULL OR m.topic = ANY ($4::text[]))
      AND (m.key IS NULL OR NOT EXISTS (
            SELECT 1
            FROM outbox.side AS older
            WHERE older.key = m.key AND older.id < m.id))
    ORDER BY m.id
    LIMIT CASE WHEN $7::boolean THEN 1 ELSE $2::integer END
    FOR UPDATE OF m SKIP LOCKED
),
dead AS (
    DELETE FROM outbox.side AS m
    WHERE m.id = ANY (ARRAY(SELECT c.id FROM candidates AS c WHERE c.exhausted))
    RETURNING m.id, m.topic, m.key, m.payload, m.headers, m.created_at,
              m.attempt, m.max_attempts, m.last_error
),
buried AS (
    INSERT INTO outbox.dead_letters
        (id, topic, key, payload, headers, created_at, attempts, max_attempts, last_error, reason,
         died_at)
    SELECT d.id, d.topic, d.key, d.payload, d.headers, d.created_at, d.attempt, d.max_attempts,
           CASE WHEN octet_length(e.text) <= 2048 THEN e.text
                -- Cut to redact.rs's 2 KiB cap, in characters: a prefix of
                -- 2048 - 15 - (bytes - chars) characters has at most 2033
                -- bytes, whatever the characters are, plus the 15-byte mark.
                ELSE left(e.text, 2033 - (octet_length(e.text) - length(e.text))) || ' …[truncated]'
           END,
           'lease_expired', $6::timestamptz
    FROM dead AS d
    CROSS JOIN LATERAL (
        SELECT 'lease expired on the last attempt (' || d.attempt || ' of ' || d.max_attempts || ')'
               || coalesce('; previous error: ' || d.last_error, '') AS text
    ) AS e
),
claimed AS (
    UPDATE outbox.side AS m
    SET attempt = m.attempt + 1,
        lease_owner = $1::text,
        lease_token = $5::uuid,
        lease_expires_at = $3::timestamptz
    WHERE m.id = ANY (ARRAY(SELECT c.id FROM candidates AS c WHERE NOT c.exhausted))
    RETURNING m.id, m.topic, m.key, m.payload, m.headers, m.attempt,
              m.lease_token, m.lease_expires_at, m.created_at
)
SELECT false AS buried, id, topic, key, payload, headers, attempt, lease_token, lease_expires_at, created_at
FROM claimed
UNION ALL
SELECT true, d.id, d.topic, d.key, d.payload, d.headers, d.attempt, NULL::uuid, NULL::timestamptz, d.created_at
FROM dead AS d
