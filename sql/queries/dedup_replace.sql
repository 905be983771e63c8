-- Hand a dedup key whose message is finished and whose window has passed
-- to a new message (api/dedup.rs). The caller holds the row's lock
-- (dedup_held.sql), so nobody else can hand it over meanwhile.
-- $1 dedup_key text, $2 id bigint, $3 part smallint, $4 held_until timestamptz
UPDATE outbox.dedup
SET id = $2::bigint, part = $3::smallint, held_until = $4::timestamptz
WHERE dedup_key = $1::text
