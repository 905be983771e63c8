-- outbox.claim(), the log: open a partition's next window.
-- $1 part smallint, $2 id issued before $3 was read (bigint), $3 the next
-- xid, read without taking one (bigint: pgrx has no xid8)
--
-- Why this shape (docs/storage.md, "Partitions and windows"):
-- * The new window is (old snap_hi, this statement's snapshot]. Its lower
--   bounds (id_lo, xid_lo) are the $2/$3 the previous opening read just
--   before its snapshot; this opening's $2/$3 are kept for the next one.
--   Rust reads $2 and then $3 before this statement starts, so both come
--   before the snapshot it takes.
-- * id_hi is read during the statement, so after its snapshot: every
--   message visible in the snapshot has an id at most that.
-- * late: the transactions that had their xid before xid_lo and were not
--   visible in snap_lo (in its xip list, or at or above its xmax: xmax is
--   "latest completed + 1", not "next to assign") and are visible now. Their
--   messages can have any id, so the window reads them by xid. Only xids
--   below xid_lo: xid_lo was read before snap_lo was taken, so snap_lo's xip
--   list can hold later xids, and those are the fresh branch's (a message
--   in both branches was handed out twice in one batch).
-- * A pair (id_lo, xid_lo) read in that order is valid for any later
--   window, just less tight; outbox._rotate() reuses an old one.
-- * outbox._window_snapshot() lists this transaction's own xid as running
--   (schema.sql says why: a consumer's follow-up was lost otherwise). It is
--   taken once, in s: OFFSET 0 keeps the planner from pulling s up into
--   the late list's filter, where it ran once per candidate (0.3 of a
--   0.9 ms opening, EXPLAIN ANALYZE under steady load).
-- * pg_current_snapshot() is the statement's snapshot: claim() runs only
--   at READ COMMITTED, where each statement takes a fresh one.
UPDATE outbox.partitions AS p
SET snap_lo = p.snap_hi,
    id_lo = p.next_id_lo,
    xid_lo = p.next_xid_lo,
    snap_hi = s.snap,
    id_hi = (SELECT CASE WHEN q.is_called THEN q.last_value ELSE 0 END FROM outbox.message_id AS q),
    late = ARRAY(
        SELECT c.x
        FROM (SELECT pg_catalog.pg_snapshot_xip(p.snap_hi) AS x
              UNION
              SELECT g::text::xid8
              FROM generate_series(pg_catalog.pg_snapshot_xmax(p.snap_hi)::text::bigint,
                                   p.next_xid_lo::text::bigint - 1) AS g) AS c
        WHERE pg_catalog.pg_visible_in_snapshot(c.x, s.snap)
          AND c.x < p.next_xid_lo
        ORDER BY c.x),
    next_id_lo = $2::bigint,
    next_xid_lo = $3::bigint::text::xid8,
    cursor_id = 0,
    batch_end = 0,
    window_done = false
FROM (SELECT outbox._window_snapshot(pg_catalog.pg_current_snapshot()) AS snap OFFSET 0) AS s
WHERE p.part = $1::smallint
