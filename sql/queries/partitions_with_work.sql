-- outbox.claim(), the log: which partitions to try, in order. Read once per
-- claim, without locks; claim_partition.sql then locks them one by one.
-- $1 now timestamptz
--
-- Why this shape (docs/storage.md, "Claim"):
-- * A partition is free when it has no lease or its lease expired. One relay
--   reads a partition at a time, which is what keeps a key's messages in
--   order; the number of partitions caps how many batches from the log are
--   out at once.
-- * The partition claimed longest ago first, so every partition gets read
--   (and its window moves on) even when a few are busy.
-- * Only a partition that may have work: it has deferred messages, its
--   window is not used up, or a committed message of it is not yet in any
--   window (its transaction is not visible in snap_hi: in its xip list or
--   at or above its xmax; the (part, xid, id) index answers, one EXISTS per
--   case: with an OR inside one, the planner scanned the segments, 10 ms
--   per claim at 200k). Idle partitions cost a claim nothing;
--   outbox._rotate() moves their windows on (rotation.sql).
-- * Once per claim and unlocked: the probes of every free partition are
--   the statement's cost (about 1 ms under steady load), and locking one
--   partition per statement made a claim pay them once per partition it
--   visited: 9 of a 20 ms claim at 1800/s (pg_stat_statements). The list
--   may be stale by the time a partition is locked: a partition that lost
--   its work costs one empty read, one that gained work waits for the next
--   claim.
SELECT p.part
FROM outbox.partitions AS p
WHERE (p.lease_token IS NULL OR p.lease_expires_at <= $1::timestamptz)
  AND (cardinality(p.deferred) > 0
       OR NOT p.window_done
       OR EXISTS (
           SELECT 1 FROM outbox.log AS l
           WHERE l.part = p.part AND l.xid >= pg_catalog.pg_snapshot_xmax(p.snap_hi))
       OR EXISTS (
           SELECT 1 FROM outbox.log AS l
           WHERE l.part = p.part
             AND l.xid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(p.snap_hi)))))
ORDER BY p.claimed_at NULLS FIRST, p.part
