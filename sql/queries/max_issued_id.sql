-- The highest message id ever handed out (0 before the first). An id above it
-- was never a message: complete/fail/release/extend report it as unknown
-- instead of as a stale lease. claim() reads it too, as a window's id bounds
-- (docs/storage.md): the sequence is non-transactional, so this is every id
-- issued so far, committed or not.
SELECT CASE WHEN is_called THEN last_value ELSE 0 END
FROM outbox.message_id
