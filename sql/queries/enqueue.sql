-- outbox.enqueue(): one message into the log, in the caller's transaction.
-- $1 topic text, $2 key text, $3 payload jsonb, $4 headers jsonb,
-- $5 deliver_at timestamptz (NULL = now), $6 max_attempts integer,
-- $7 now timestamptz (clock.rs: the one clock tests can move)
--
-- Why this shape (docs/storage.md):
-- * The transaction's xid is taken before the message id: x is a subquery
--   kept apart by OFFSET 0, so pg_current_xact_id() has run before n's
--   nextval(). A claim relies on it: a transaction whose xid is at least
--   the xid it read has only ids above the id it read before that.
-- * The layout is log_segment's last_value (schema.sql): the segment is it
--   % 3, the partition count it / 3221225472. A sequence read: it sees a
--   rotation's switch at once, whatever the caller's snapshot. It is read
--   in n's target list, after x: a transaction that writes a segment had its
--   xid before it read which one (rotation.sql's seal relies on it).
-- * The partition is a stable hash of the key (its messages are read in
--   order by one relay at a time), or the id for a keyless message, modulo
--   the partition count (16 unless outbox.set_partitions() changed it;
--   outbox.partitions has one row each). The sign bit is cleared first, so
--   with 16 this is the hash's low four bits.
-- * One INSERT and nothing else: the log is never updated. Validation
--   happened in Rust; the doorbell trigger fires after the statement.
INSERT INTO outbox.log
    (seg, part, xid, id, topic, key, payload, headers, created_at, deliver_at, max_attempts)
SELECT (n.layout % 3)::smallint,
       (CASE WHEN n.key IS NULL THEN n.id % (n.layout / 3221225472)
             ELSE (pg_catalog.hashtextextended(n.key, 0) & 9223372036854775807)
                  % (n.layout / 3221225472) END)::smallint,
       n.xid, n.id, $1::text, n.key, $3::jsonb, $4::jsonb,
       $7::timestamptz, coalesce($5::timestamptz, $7::timestamptz), $6::integer
FROM (SELECT x.xid, pg_catalog.nextval('outbox.message_id'::regclass) AS id, $2::text AS key,
             (SELECT s.last_value FROM outbox.log_segment AS s) AS layout
      FROM (SELECT pg_catalog.pg_current_xact_id() AS xid OFFSET 0) AS x) AS n
RETURNING id
