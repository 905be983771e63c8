-- outbox.release(): hand leased messages back without spending an attempt.
-- $1 ids bigint[], $2 lease_token uuid
-- claim() counted the attempt, so release gives it back.
UPDATE outbox.side
SET attempt = greatest(attempt - 1, 0),
    lease_owner = NULL,
    lease_token = NULL,
    lease_expires_at = NULL
WHERE id = ANY ($1::bigint[]) AND lease_token = $2::uuid
