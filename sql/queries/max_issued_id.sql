-- The highest message id ever handed out (0 before the first). An id above it
-- was never a message: complete/fail/release/extend report it as unknown
-- instead of as a stale lease.
SELECT CASE WHEN is_called THEN last_value ELSE 0 END
FROM outbox.messages_id_seq
