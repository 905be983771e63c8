-- outbox.enqueue_batch(): many messages of one topic in one statement.
-- $1 topic text, $2 payloads jsonb[], $3 keys text[] (NULL = no keys),
-- $4 headers jsonb[] (NULL = no headers), $5 deliver_at timestamptz, $6 max_attempts integer,
-- $7 now timestamptz (clock.rs)
-- Multi-argument unnest pads a NULL array with NULLs; Rust checked that the
-- non-NULL arrays have equal lengths. WITH ORDINALITY + ORDER BY keeps the ids
-- in input order, which is also per-key order within the batch.
INSERT INTO outbox.messages (topic, key, payload, headers, created_at, deliver_at, max_attempts)
SELECT $1::text, u.key, u.payload, u.headers,
       $7::timestamptz, coalesce($5::timestamptz, $7::timestamptz), $6::integer
FROM unnest($2::jsonb[], $3::text[], $4::jsonb[]) WITH ORDINALITY AS u(payload, key, headers, ord)
ORDER BY u.ord
RETURNING id
