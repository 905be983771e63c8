-- Move messages of a leased log batch to the side table, still leased: with
-- the same token, owner and expiry, attempt 1 (claimed once). Used before
-- fail, release and a partial extend (which then run on the side table,
-- with per-message leases, as in 0.1.0), and by claim() for the unsettled
-- rest of a batch whose lease expired.
-- $1 ids bigint[], $2 lease_token uuid
--
-- Why this shape:
-- * The token is the fence: only partitions whose batch this token holds
--   are touched, so a stale token moves nothing. Of the token's partitions
--   only those holding one of $1 are locked: a claim that recovers one
--   partition of an expired token must not wait for (and deadlock with)
--   another claim recovering a sibling. Which of $1 each holds is a hashed
--   INTERSECT, and what is left a hashed EXCEPT. `batch && $1`,
--   `b <> ALL ($1)` and `id = ANY ($1)` per row are each n x m comparisons:
--   a million for a batch of 1000.
-- * o locks the partition rows (FOR UPDATE re-reads the latest version), so
--   the copy, the batch that remains and the cursor come from one state.
-- * When the batch is empty afterwards, the cursor moves to batch_end and
--   the lease ends: the partition is free for the next read.
-- * A moved message whose lease has expired is a suspect for the side
--   table's claim (claim_side.sql): handed out alone.
WITH o AS (
    SELECT p.part, p.batch, p.batch_end, p.lease_owner, p.lease_token, p.lease_expires_at
    FROM outbox.partitions AS p
    WHERE p.lease_token = $2::uuid
      AND EXISTS (SELECT unnest(p.batch) INTERSECT SELECT unnest($1::bigint[]))
    FOR UPDATE
),
split AS MATERIALIZED (
    SELECT o.part, o.batch_end, o.lease_owner, o.lease_token, o.lease_expires_at,
           ARRAY(SELECT unnest(o.batch) INTERSECT SELECT unnest($1::bigint[])) AS hit,
           ARRAY(SELECT unnest(o.batch) EXCEPT SELECT unnest($1::bigint[]) ORDER BY 1) AS rest
    FROM o
),
moved AS (
    INSERT INTO outbox.side
        (id, topic, key, payload, headers, created_at, deliver_at, attempt, max_attempts,
         lease_owner, lease_token, lease_expires_at)
    SELECT l.id, l.topic, l.key, l.payload, l.headers, l.created_at, l.deliver_at, 1, l.max_attempts,
           s.lease_owner, s.lease_token, s.lease_expires_at
    FROM split AS s
    JOIN outbox.log AS l ON l.part = s.part AND l.id = ANY (s.hit)
    RETURNING 1
),
settled AS (
    UPDATE outbox.partitions AS p
    SET batch = r.rest,
        cursor_id = CASE WHEN cardinality(r.rest) = 0 THEN r.batch_end ELSE p.cursor_id END,
        lease_owner = CASE WHEN cardinality(r.rest) = 0 THEN NULL ELSE p.lease_owner END,
        lease_token = CASE WHEN cardinality(r.rest) = 0 THEN NULL ELSE p.lease_token END,
        lease_expires_at = CASE WHEN cardinality(r.rest) = 0 THEN NULL ELSE p.lease_expires_at END
    FROM split AS r
    WHERE p.part = r.part AND cardinality(r.hit) > 0
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM settled) AS partitions
