-- outbox.claim(), first step: the leased log batches whose lease expired.
-- $1 now timestamptz
-- Their unsettled messages move to the side table (detach.sql, still under
-- the old token) before anything is claimed, so this very claim can hand
-- them out there — one at a time, as suspects (claim_side.sql). SKIP
-- LOCKED: a partition another claim is looking at is that claim's to
-- recover. Reads at most one row per partition.
SELECT p.lease_token, p.batch
FROM outbox.partitions AS p
WHERE p.lease_expires_at <= $1::timestamptz AND cardinality(p.batch) > 0
FOR UPDATE SKIP LOCKED
