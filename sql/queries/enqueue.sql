-- outbox.enqueue(): one message, in the caller's transaction.
-- $1 topic text, $2 key text, $3 payload jsonb, $4 headers jsonb,
-- $5 deliver_at timestamptz (NULL = now), $6 max_attempts integer
-- Validation happened in Rust before this runs; the doorbell trigger fires
-- after the statement.
INSERT INTO outbox.messages (topic, key, payload, headers, deliver_at, max_attempts)
VALUES ($1::text, $2::text, $3::jsonb, $4::jsonb,
        coalesce($5::timestamptz, statement_timestamp()), $6::integer)
RETURNING id
