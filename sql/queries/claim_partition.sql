-- outbox.claim(), the log: pick and lock one partition to read from.
-- $1 now timestamptz, $2 tried smallint[] (partitions this call already read)
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
-- * An expired lease's unsettled batch comes back in the row (batch,
--   lease_token): api/claim_log.rs moves it to the side table before reading
--   on. batch_end is where reading goes on (the cursor, once no batch is out).
SELECT p.part, p.window_done, p.lease_token, p.batch, p.batch_end
FROM outbox.partitions AS p
WHERE (p.lease_token IS NULL OR p.lease_expires_at <= $1::timestamptz)
  AND p.part <> ALL ($2::smallint[])
ORDER BY p.claimed_at NULLS FIRST, p.part
LIMIT 1
FOR UPDATE SKIP LOCKED
