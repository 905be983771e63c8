-- Lock the row of a dedup key that dedup_peek.sql found looking free (its
-- holder finished, its window passed; api/dedup.rs), so
-- that who holds it stays true until this transaction ends, and say
-- whether its window still holds it.
-- $1 dedup_key text, $2 now timestamptz (clock.rs)
--
-- Why this shape: the window is a timestamp comparison; whether the
-- holder's message is unfinished is asked by the next statement
-- (dedup_unfinished.sql), not here. FOR UPDATE may return a version of the
-- row newer than this statement's snapshot (another producer handed the
-- key to a new message and committed while this one waited), and in that
-- snapshot the new message does not exist yet: it would look finished,
-- and be written twice. The next statement has a fresh snapshot.
-- No row: the key was removed (cleanup) after the take failed; the caller
-- takes it again.
SELECT d.id, d.part, d.held_until > $2::timestamptz AS in_window
FROM outbox.dedup AS d
WHERE d.dedup_key = $1::text
FOR UPDATE
