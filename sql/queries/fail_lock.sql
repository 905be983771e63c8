-- outbox.fail(), step 1: find and lock the leased message by id and token.
-- $1 id bigint, $2 lease_token uuid
-- Locking here makes the decision in Rust (retry or dead) and step 2 one
-- atomic change: nobody can claim or finish the row in between.
SELECT attempt, max_attempts
FROM outbox.side
WHERE id = $1::bigint AND lease_token = $2::uuid
FOR UPDATE
