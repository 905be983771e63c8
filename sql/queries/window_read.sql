-- outbox.claim(), the log: the next messages of a partition's window, in id
-- order.
-- $1 part smallint, $2 how many integer, $3 after this id bigint (the
-- cursor, or where this claim's read got to)
--
-- Why this shape (docs/storage.md, "Partitions and windows"):
-- * A window is the messages whose transaction is visible in snap_hi and not
--   in snap_lo. Two branches find them:
--   - late (transactions open when the window began, listed in p.late):
--     per transaction through (part, xid, id), each in id order;
--   - fresh (xid >= xid_lo): their ids lie in (id_lo, id_hi], so one range
--     of (part, id) in id order. Rows of that range outside the window
--     (still running, or committed after snap_hi, or before snap_lo) are
--     skipped; there are about as many as there were concurrent writers.
--   Merged by id: inside a window, enqueue order. Never by xid: a
--   transaction can take its xid, wait, and enqueue after another committed.
-- * Only rows this statement sees: a rolled-back message never appears, and
--   every member of the window committed before snap_hi was taken, which is
--   before this statement's snapshot.
-- * Each branch is limited to $2 first, so a claim reads at most 2 x $2
--   rows per late transaction and range, whatever the backlog.
SELECT r.id, r.topic, r.key, r.payload, r.headers, r.created_at, r.deliver_at, r.max_attempts
FROM outbox.partitions AS p
CROSS JOIN LATERAL (
    (SELECT l.id, l.topic, l.key, l.payload, l.headers, l.created_at, l.deliver_at, l.max_attempts
     FROM unnest(p.late) AS x(xid)
     CROSS JOIN LATERAL (
         SELECT l.*
         FROM outbox.log AS l
         WHERE l.part = p.part AND l.xid = x.xid AND l.id > $3::bigint
         ORDER BY l.id
         LIMIT $2::integer) AS l)
    UNION ALL
    (SELECT l.id, l.topic, l.key, l.payload, l.headers, l.created_at, l.deliver_at, l.max_attempts
     FROM outbox.log AS l
     WHERE l.part = p.part
       AND l.id > greatest($3::bigint, p.id_lo) AND l.id <= p.id_hi
       AND l.xid >= p.xid_lo
       AND pg_catalog.pg_visible_in_snapshot(l.xid, p.snap_hi)
       AND NOT pg_catalog.pg_visible_in_snapshot(l.xid, p.snap_lo)
     ORDER BY l.id
     LIMIT $2::integer)
) AS r
WHERE p.part = $1::smallint
ORDER BY r.id
LIMIT $2::integer
