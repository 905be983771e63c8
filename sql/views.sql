-- outbox.messages: every unfinished message, wherever it is (docs/storage.md).
-- For admins (grant_admin gives SELECT) and tests; relays and producers use
-- the functions. Not on any hot path: it checks each log row against its
-- partition's window.
--
-- A log row is finished (consumed) when its transaction is visible in its
-- partition's snap_lo (an earlier window, all handed out), or it is in the
-- current window at or below batch_end and not in the leased batch (handed
-- out and settled, or diverted to the side table). Everything else in the
-- log is unfinished: in the leased batch (leased, attempt 1), deferred to
-- the partition's next batch, or not yet read (attempt 0). Rows of transactions still running are not visible here
-- at all, as everywhere.
CREATE VIEW outbox.messages AS
SELECT l.id, l.topic, l.key, l.payload, l.headers, l.created_at, l.deliver_at,
       CASE WHEN l.id = ANY (p.batch) THEN 1 ELSE 0 END AS attempt,
       l.max_attempts,
       CASE WHEN l.id = ANY (p.batch) THEN p.lease_owner END AS lease_owner,
       CASE WHEN l.id = ANY (p.batch) THEN p.lease_token END AS lease_token,
       CASE WHEN l.id = ANY (p.batch) THEN p.lease_expires_at END AS lease_expires_at,
       NULL::text AS last_error,
       'log'::text AS place
FROM outbox.log AS l
-- LEFT: before the first claim the partition rows do not exist yet (nor,
-- for a moment, after set_partitions() raised the count).
LEFT JOIN outbox.partitions AS p ON p.part = l.part
WHERE p.part IS NULL
   OR l.id = ANY (p.deferred)
   -- a batch can hold messages of an earlier window (handed out from
   -- deferred, or read before the claim opened the next window)
   OR l.id = ANY (p.batch)
   OR (NOT pg_catalog.pg_visible_in_snapshot(l.xid, p.snap_lo)
       AND NOT (pg_catalog.pg_visible_in_snapshot(l.xid, p.snap_hi)
                AND l.id <= p.batch_end
                AND l.id <> ALL (p.batch)))
UNION ALL
SELECT s.id, s.topic, s.key, s.payload, s.headers, s.created_at, s.deliver_at, s.attempt,
       s.max_attempts, s.lease_owner, s.lease_token, s.lease_expires_at, s.last_error,
       'side'::text
FROM outbox.side AS s;

COMMENT ON VIEW outbox.messages IS
    'Every unfinished message (ready, scheduled, retrying, leased), in the log or the side table. For looking, not writing.';
