-- outbox dead list: dead letters, oldest first, filtered by topic and time
-- of death. A query on the outbox.dead_letters table (grant_admin gives
-- SELECT) rather than outbox.list_dead(), which has no time filter; the
-- primary key keeps "ORDER BY id LIMIT n" an index scan however many there
-- are. $1 topic or NULL, $2 died at or after, or NULL, $3 most rows.
SELECT id, topic, key, attempts, reason, died_at, last_error
FROM outbox.dead_letters
WHERE ($1::text IS NULL OR topic = $1::text)
  AND ($2::timestamptz IS NULL OR died_at >= $2::timestamptz)
ORDER BY id
LIMIT $3::bigint
