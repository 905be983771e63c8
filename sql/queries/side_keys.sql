-- outbox.claim(), the log: which of these keys have a message in the side
-- table. $1 keys text[]
-- A log message whose key has one there (a head retrying, scheduled, leased
-- or ready) is diverted behind it instead of being handed out: per-key order
-- holds across the two places, and the busy key holds back only itself, not
-- its partition. One probe of side_key_id per key, for a whole read.
SELECT DISTINCT s.key
FROM outbox.side AS s
WHERE s.key = ANY ($1::text[])
