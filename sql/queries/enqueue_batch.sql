-- outbox.enqueue_batch(): many messages of one topic into the log in one
-- statement.
-- $1 topic text, $2 payloads jsonb[], $3 keys text[] (NULL = no keys),
-- $4 headers jsonb[] (NULL = no headers), $5 deliver_at timestamptz, $6 max_attempts integer,
-- $7 now timestamptz (clock.rs)
-- The shape is enqueue.sql's (xid before ids, segment and partition count
-- from the sequence, partition from key or id). Multi-argument unnest pads a NULL array with
-- NULLs; Rust checked that the non-NULL arrays have equal lengths. WITH
-- ORDINALITY + ORDER BY takes the ids in input order, which is also per-key
-- order within the batch.
INSERT INTO outbox.log
    (seg, part, xid, id, topic, key, payload, headers, created_at, deliver_at, max_attempts)
SELECT (n.layout % 3)::smallint,
       (CASE WHEN n.key IS NULL THEN n.id % (n.layout / 3221225472)
             ELSE (pg_catalog.hashtextextended(n.key, 0) & 9223372036854775807)
                  % (n.layout / 3221225472) END)::smallint,
       n.xid, n.id, $1::text, n.key, n.payload, n.headers,
       $7::timestamptz, coalesce($5::timestamptz, $7::timestamptz), $6::integer
FROM (SELECT x.xid, pg_catalog.nextval('outbox.message_id'::regclass) AS id,
             (SELECT s.last_value FROM outbox.log_segment AS s) AS layout,
             u.key, u.payload, u.headers, u.ord
      FROM (SELECT pg_catalog.pg_current_xact_id() AS xid OFFSET 0) AS x
      CROSS JOIN unnest($2::jsonb[], $3::text[], $4::jsonb[]) WITH ORDINALITY AS u(payload, key, headers, ord)
      ORDER BY u.ord) AS n
ORDER BY n.ord
RETURNING id
