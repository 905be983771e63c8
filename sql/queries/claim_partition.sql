-- outbox.claim(), the log: lock one partition to read from, if it is still
-- free. $1 part smallint, $2 now timestamptz
--
-- Why this shape (docs/storage.md, "Claim"):
-- * partitions_with_work.sql chose it, without a lock; free is checked
--   again here, under the lock.
-- * SKIP LOCKED: concurrent claims take different partitions without
--   waiting. The lock is held until the claim's transaction ends.
-- * An expired lease's unsettled batch comes back in the row (batch,
--   lease_token): api/claim_log.rs moves it to the side table before reading
--   on. batch_end is where reading goes on (the cursor, once no batch is out).
SELECT p.part, p.window_done, p.lease_token, p.batch, p.batch_end, p.deferred
FROM outbox.partitions AS p
WHERE p.part = $1::smallint
  AND (p.lease_token IS NULL OR p.lease_expires_at <= $2::timestamptz)
FOR UPDATE SKIP LOCKED
