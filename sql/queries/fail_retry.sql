-- outbox.fail(), step 2a: schedule the next attempt after $2.
-- $1 id bigint, $2 delay interval, $3 last_error text (already truncated and redacted;
-- NULL keeps the previous error)
UPDATE outbox.messages
SET deliver_at = statement_timestamp() + $2::interval,
    last_error = coalesce($3::text, last_error),
    lease_owner = NULL,
    lease_token = NULL,
    lease_expires_at = NULL
WHERE id = $1::bigint
RETURNING deliver_at
