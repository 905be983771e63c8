-- Take the dedup keys nobody holds (api/dedup.rs).
-- $1 dedup keys text[] (distinct, no NULLs), $2 ids bigint[], $3 partitions
-- smallint[], $4 held_until timestamptz (the same for every key of a call)
--
-- Why this shape:
-- * ON CONFLICT DO NOTHING waits for a producer that inserted the same key
--   and has not committed yet: if it commits, the key is its (the caller
--   then asks who holds it, dedup_held.sql); if it rolls back, the key is
--   taken here. Exactly one message per key, no error.
-- * Sorted by key: two calls taking overlapping keys wait for each other in
--   one order and cannot deadlock.
-- * RETURNING the taken keys' ids: their messages are the ones to write.
INSERT INTO outbox.dedup (dedup_key, id, part, held_until)
SELECT u.dedup_key, u.id, u.part, $4::timestamptz
FROM unnest($1::text[], $2::bigint[], $3::smallint[]) AS u(dedup_key, id, part)
ORDER BY u.dedup_key
ON CONFLICT (dedup_key) DO NOTHING
RETURNING id
