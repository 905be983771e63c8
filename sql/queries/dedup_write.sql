-- The messages of an enqueue with dedup keys that are to be written, into
-- the log (api/dedup.rs), with the ids and partitions dedup_reserve.sql
-- gave them.
-- $1 topic text, $2 layout bigint, $3 ids bigint[], $4 partitions smallint[],
-- $5 keys text[], $6 payloads jsonb[], $7 headers jsonb[],
-- $8 deliver_at timestamptz (NULL = now), $9 max_attempts integer,
-- $10 now timestamptz (clock.rs)
--
-- Why this shape: enqueue_batch.sql's INSERT, with the id, segment and
-- partition already chosen. pg_current_xact_id() is the xid assigned
-- before the ids were taken (the same top-level transaction). In id order,
-- which is input order.
INSERT INTO outbox.log
    (seg, part, xid, id, topic, key, payload, headers, created_at, deliver_at, max_attempts)
SELECT ($2::bigint % 3)::smallint, u.part, pg_catalog.pg_current_xact_id(), u.id, $1::text,
       u.key, u.payload, u.headers,
       $10::timestamptz, coalesce($8::timestamptz, $10::timestamptz), $9::integer
FROM unnest($3::bigint[], $4::smallint[], $5::text[], $6::jsonb[], $7::jsonb[])
     AS u(id, part, key, payload, headers)
ORDER BY u.id
