-- outbox.complete() with retention on, the log (api/history.rs): record the
-- messages of leased log batches that this call settles, before
-- partition_complete.sql settles them.
-- $1 ids bigint[], $2 lease_token uuid, $3 now timestamptz (clock.rs)
--
-- Why this shape:
-- * The partitions are locked (FOR UPDATE) with partition_complete.sql's
--   condition: until this transaction ends no claim can recover their
--   batches (expired_batches.sql skips locked rows), so what is recorded
--   here is exactly what partition_complete.sql then settles.
-- * The log rows are found by (part, id), the log's index.
-- * attempts is 1: a log batch is always a message's first attempt (a
--   retry lives in the side table). published_by is the lease owner.
WITH p AS (
    SELECT p.part, p.batch, p.lease_owner
    FROM outbox.partitions AS p
    WHERE p.lease_token = $2::uuid
      AND EXISTS (SELECT unnest(p.batch) INTERSECT SELECT unnest($1::bigint[]))
    FOR UPDATE
)
INSERT INTO outbox.published
    (id, topic, key, payload, headers, created_at, published_at, attempts, published_by)
SELECT l.id, l.topic, l.key, l.payload, l.headers, l.created_at, $3::timestamptz, 1, p.lease_owner
FROM p
JOIN outbox.log AS l ON l.part = p.part AND l.id = ANY (p.batch)
WHERE l.id = ANY ($1::bigint[])
ON CONFLICT (id) DO NOTHING
