-- outbox.extend(): push the lease expiry of leased messages to now + $3.
-- $1 ids bigint[], $2 lease_token uuid, $3 lease interval
-- Allowed after expiry as long as nobody re-claimed (the token still
-- matches); claim() re-checks the expiry under its row lock, so an extend
-- that wins the race keeps the message.
UPDATE outbox.messages
SET lease_expires_at = statement_timestamp() + $3::interval
WHERE id = ANY ($1::bigint[]) AND lease_token = $2::uuid
RETURNING lease_expires_at
