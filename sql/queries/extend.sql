-- outbox.extend(): push the lease expiry of leased messages to $3 (now + lease,
-- computed and capped in Rust: clock.rs).
-- $1 ids bigint[], $2 lease_token uuid, $3 lease_expires_at timestamptz
-- Allowed after expiry as long as nobody re-claimed (the token still
-- matches); claim() re-checks the expiry under its row lock, so an extend
-- that wins the race keeps the message.
UPDATE outbox.side
SET lease_expires_at = $3::timestamptz
WHERE id = ANY ($1::bigint[]) AND lease_token = $2::uuid
RETURNING lease_expires_at
