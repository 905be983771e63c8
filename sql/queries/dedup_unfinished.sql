-- Is the message holding a locked dedup key unfinished (api/dedup.rs)? In
-- its own statement, for a snapshot taken after the lock (dedup_held.sql
-- says why). The rule is outbox._message_unfinished (dedup.sql).
-- $1 id bigint, $2 part smallint
SELECT outbox._message_unfinished($1::bigint, $2::smallint)
