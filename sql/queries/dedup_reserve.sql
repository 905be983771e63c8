-- The first step of an enqueue with dedup keys (api/dedup.rs): the
-- transaction's xid, then one message id per message in input order, the
-- log layout and each message's partition. Nothing is written yet: which
-- messages are written depends on which keys this call can take.
-- $1 keys text[] (the messages' ordering keys, NULL elements for keyless)
--
-- Why this shape: enqueue.sql's rules, with the ids taken before the log
-- insert so that the dedup rows can name them.
-- * xid before ids (x is kept apart by OFFSET 0), and the layout read
--   after the xid: docs/storage.md and rotation.sql rely on both.
-- * ids in input order (WITH ORDINALITY, ORDER BY): per-key order within a
--   batch is input order.
-- * The partition formula is enqueue.sql's; those two statements keep
--   their own copy so that the plain path stays one statement that works
--   against every schema version (a new library meeting a database not yet
--   updated, docs/upgrading.md).
SELECT max(n.layout) AS layout,
       array_agg(n.id ORDER BY n.ord) AS ids,
       array_agg((CASE WHEN n.key IS NULL THEN n.id % (n.layout / 3221225472)
                       ELSE (pg_catalog.hashtextextended(n.key, 0) & 9223372036854775807)
                            % (n.layout / 3221225472) END)::smallint ORDER BY n.ord) AS parts
FROM (SELECT pg_catalog.nextval('outbox.message_id'::regclass) AS id,
             (SELECT s.last_value FROM outbox.log_segment AS s) AS layout,
             u.key, u.ord
      FROM (SELECT pg_catalog.pg_current_xact_id() AS xid OFFSET 0) AS x
      CROSS JOIN unnest($1::text[]) WITH ORDINALITY AS u(key, ord)
      ORDER BY u.ord) AS n
