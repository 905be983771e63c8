-- outbox.claim(), the log: pick and lock the next partitions to read from.
-- $1 now timestamptz, $2 tried smallint[] (partitions this call already
-- locked), $3 how many at most integer
--
-- Why this shape (docs/storage.md, "Claim"):
-- * A partition is free when it has no lease or its lease expired. One relay
--   reads a partition at a time, which is what keeps a key's messages in
--   order; the number of partitions caps how many batches from the log are
--   out at once.
-- * SKIP LOCKED: concurrent claims take different partitions without
--   waiting. The lock is held until the claim's transaction ends.
-- * The partition claimed longest ago first, so every partition gets read
--   (and its window moves on) even when a few are busy.
-- * Only a partition that may have work: it has deferred messages, its
--   window is not used up, or a
--   committed message of it is not yet in any window (its transaction is
--   not visible in snap_hi: in its xip list or at or above its xmax; the
--   (part, xid, id) index answers, one EXISTS per case: with an OR inside
--   one, the planner scanned the segments, 10 ms per claim at 200k). Idle partitions cost a claim nothing;
--   outbox._rotate() moves their windows on (rotation.sql).
-- * An expired lease's unsettled batch comes back in the row (batch,
--   lease_token): api/claim_log.rs moves it to the side table before reading
--   on. batch_end is where reading goes on (the cursor, once no batch is out).
SELECT p.part, p.window_done, p.lease_token, p.batch, p.batch_end, p.deferred
FROM outbox.partitions AS p
WHERE (p.lease_token IS NULL OR p.lease_expires_at <= $1::timestamptz)
  AND p.part <> ALL ($2::smallint[])
  AND (cardinality(p.deferred) > 0
       OR NOT p.window_done
       OR EXISTS (
           SELECT 1 FROM outbox.log AS l
           WHERE l.part = p.part AND l.xid >= pg_catalog.pg_snapshot_xmax(p.snap_hi))
       OR EXISTS (
           SELECT 1 FROM outbox.log AS l
           WHERE l.part = p.part
             AND l.xid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(p.snap_hi)))))
-- * A few at a time: the statement evaluates the work probes of every free
--   partition before it sorts, so taking one per call made a claim under
--   steady load (work in most partitions, a few messages each) pay it 16
--   times: 0.56 ms a call, 6 calls a claim (pg_stat_statements, 2000/s).
--   Not all at once: a second relay's claim meanwhile takes the others.
ORDER BY p.claimed_at NULLS FIRST, p.part
LIMIT $3::integer
FOR UPDATE SKIP LOCKED
