-- The ids a topic-wide requeue or purge would change, for the dry run and
-- the confirmation prompt (the change itself is outbox.requeue_dead_topic /
-- purge_dead_topic, so its own rules decide). $1 topic, $2 died before this
-- or NULL, $3 most ids shown.
SELECT id
FROM outbox.dead_letters
WHERE topic = $1::text
  AND ($2::timestamptz IS NULL OR died_at < $2::timestamptz)
ORDER BY id
LIMIT $3::bigint
