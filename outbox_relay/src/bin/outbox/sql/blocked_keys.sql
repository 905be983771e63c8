-- outbox blocked-keys: outbox.blocked_keys() as it is; the CLI adds only
-- the output format. $1 most rows.
SELECT topic, key, head_id, head_state, head_attempt, head_due_at, head_last_error, waiting
FROM outbox.blocked_keys($1::integer)
