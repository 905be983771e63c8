-- outbox peek: what a relay would be handed next, without claiming it: due
-- (no deliver_at, or passed), not held by a live lease, and the oldest
-- unfinished message of its key (a claim never hands out one behind it).
-- Read from outbox.messages (grant_admin gives SELECT), so nothing is
-- leased or changed. Oldest first; a claim visits partitions in turn, so
-- across keys it may hand them out in another order. The NOT EXISTS reads
-- the view again per keyed row: fine for an operator's look at the head of
-- the queue, not for a hot path. $1 topics or NULL, $2 most rows.
SELECT m.id, m.topic, m.key, m.attempt, m.created_at, m.deliver_at, m.place
FROM outbox.messages AS m
WHERE (m.lease_expires_at IS NULL OR m.lease_expires_at < pg_catalog.now())
  AND (m.deliver_at IS NULL OR m.deliver_at <= pg_catalog.now())
  AND ($1::text[] IS NULL OR m.topic = ANY ($1::text[]))
  AND (m.key IS NULL OR NOT EXISTS (
        SELECT 1 FROM outbox.messages AS o WHERE o.key = m.key AND o.id < m.id))
ORDER BY m.id
LIMIT $2::bigint
