-- outbox.fail(), step 2a: schedule the next attempt at $2 (now + the delay,
-- computed and capped in Rust: clock.rs).
-- $1 id bigint, $2 deliver_at timestamptz, $3 last_error text (already truncated and redacted;
-- NULL keeps the previous error)
UPDATE outbox.side
SET deliver_at = $2::timestamptz,
    last_error = coalesce($3::text, last_error),
    lease_owner = NULL,
    lease_token = NULL,
    lease_expires_at = NULL
WHERE id = $1::bigint
RETURNING deliver_at
