-- Who holds a dedup key this call could not take (api/dedup.rs), locked so
-- that the answer stays true until this transaction ends.
-- $1 dedup_key text, $2 now timestamptz (clock.rs)
--
-- Why this shape: the window is checked first (a timestamp comparison);
-- only a key whose window has passed costs the look at its message
-- (outbox._message_unfinished, dedup.sql). No row: the key was removed
-- (cleanup) after the take failed; the caller takes it again.
SELECT d.id,
       d.held_until > $2::timestamptz OR outbox._message_unfinished(d.id, d.part) AS held
FROM outbox.dedup AS d
WHERE d.dedup_key = $1::text
FOR UPDATE
