-- outbox.enqueue(): one message, in the caller's transaction.
-- $1 topic text, $2 key text, $3 payload jsonb, $4 headers jsonb,
-- $5 deliver_at timestamptz (NULL = now), $6 max_attempts integer,
-- $7 now timestamptz (clock.rs: the one clock tests can move)
-- Validation happened in Rust before this runs; the doorbell trigger fires
-- after the statement.
INSERT INTO outbox.messages (topic, key, payload, headers, created_at, deliver_at, max_attempts)
VALUES ($1::text, $2::text, $3::jsonb, $4::jsonb,
        $7::timestamptz, coalesce($5::timestamptz, $7::timestamptz), $6::integer)
RETURNING id
