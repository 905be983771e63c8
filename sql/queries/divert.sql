-- outbox.claim(), the log: copy messages to the side table, unleased (a
-- message behind a busy key, not yet due, or of a topic this claim does not
-- take). $1 part smallint, $2 ids bigint[]
-- Off the happy path, so a second write is fine here. The copy keeps the id,
-- created_at and deliver_at; the side table's claim takes it from there in
-- per-key id order (docs/storage.md, "Claim").
INSERT INTO outbox.side
    (id, topic, key, payload, headers, created_at, deliver_at, attempt, max_attempts)
SELECT l.id, l.topic, l.key, l.payload, l.headers, l.created_at, l.deliver_at, 0, l.max_attempts
FROM outbox.log AS l
WHERE l.part = $1::smallint AND l.id = ANY ($2::bigint[])
