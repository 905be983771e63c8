-- outbox.fail(), step 2b: move the message to the dead letters.
-- $1 id bigint, $2 last_error text (already truncated and redacted; NULL keeps the
-- previous error), $3 reason text, $4 now timestamptz (clock.rs)
WITH dead AS (
    DELETE FROM outbox.side
    WHERE id = $1::bigint
    RETURNING id, topic, key, payload, headers, created_at, attempt, max_attempts, last_error
)
INSERT INTO outbox.dead_letters
    (id, topic, key, payload, headers, created_at, attempts, max_attempts, last_error, reason,
     died_at)
SELECT id, topic, key, payload, headers, created_at, attempt, max_attempts,
       coalesce($2::text, last_error), $3::text, $4::timestamptz
FROM dead
