-- Who holds a dedup key this call could not take (api/dedup.rs), without a
-- lock: most keys met again are held (a producer's retry), and the answer
-- "held by message id" needs no lock, it was true when read. Only a holder
-- that looks finished and out of its window is locked and asked again
-- (dedup_held.sql) before the key is handed over. Locking first made every
-- retry of one key wait for the previous one's commit: 1192 duplicate
-- enqueues/s from 16 clients on one key (make bench QUICK=1, W1).
-- $1 dedup_key text, $2 now timestamptz (clock.rs)
-- No row: the key was removed (cleanup) after the take failed.
SELECT d.id, d.part, d.held_until > $2::timestamptz AS in_window
FROM outbox.dedup AS d
WHERE d.dedup_key = $1::text
