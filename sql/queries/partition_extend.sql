-- outbox.extend(), the log: move the expiry of whole leased log batches.
-- $1 ids bigint[], $2 lease_token uuid, $3 lease_expires_at timestamptz
-- A log batch shares one lease, so this applies only to partitions whose
-- whole remaining batch is among $1; api/settle.rs detaches the messages of
-- any other batch to the side table first, where each has its own lease.
-- "Whole batch among $1" is a hashed EXCEPT: `batch <@ $1` compares n x m.
-- Allowed after expiry while the token still matches, as for the side table.
UPDATE outbox.partitions AS p
SET lease_expires_at = $3::timestamptz
WHERE p.lease_token = $2::uuid AND cardinality(p.batch) > 0
  AND NOT EXISTS (SELECT unnest(p.batch) EXCEPT SELECT unnest($1::bigint[]))
RETURNING p.batch AS extended
