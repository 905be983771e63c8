-- outbox.claim(), the log: record what a read handed out: the claim's only
-- write for its whole batch.
-- $1 part smallint, $2 batch bigint[] (the ids handed out), $3 batch_end
-- bigint (the last id read and dealt with, handed out or diverted),
-- $4 window_done boolean, $5 owner text, $6 lease_token uuid,
-- $7 lease_expires_at timestamptz, $8 now timestamptz, $9 deferred bigint[]
-- (read, but held for the next batch: their key is already in this one)
-- An empty batch (everything diverted, or nothing read) moves the cursor at
-- once and takes no lease.
UPDATE outbox.partitions AS p
SET batch = $2::bigint[],
    batch_end = $3::bigint,
    cursor_id = CASE WHEN cardinality($2::bigint[]) = 0 THEN $3::bigint ELSE p.cursor_id END,
    window_done = $4::boolean,
    lease_owner = CASE WHEN cardinality($2::bigint[]) = 0 THEN NULL ELSE $5::text END,
    lease_token = CASE WHEN cardinality($2::bigint[]) = 0 THEN NULL ELSE $6::uuid END,
    lease_expires_at = CASE WHEN cardinality($2::bigint[]) = 0 THEN NULL ELSE $7::timestamptz END,
    claimed_at = $8::timestamptz,
    deferred = $9::bigint[]
WHERE p.part = $1::smallint
