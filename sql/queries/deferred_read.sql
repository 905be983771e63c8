-- outbox.claim(), the log: a partition's deferred messages, in id order.
-- $1 part smallint, $2 ids bigint[]
-- Read before the window goes on: they are older than anything after the
-- cursor, and each waited only because its key was already in the batch
-- before (claim_log.rs). (part, id) probes, at most a few hundred.
SELECT l.id, l.topic, l.key, l.payload, l.headers, l.created_at, l.deliver_at, l.max_attempts
FROM outbox.log AS l
WHERE l.part = $1::smallint AND l.id = ANY ($2::bigint[])
ORDER BY l.id
