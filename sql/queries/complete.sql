-- outbox.complete(): finished messages leave the hot table at once.
-- $1 ids bigint[], $2 lease_token uuid
-- The token is the fence: a relay whose lease expired and was re-claimed by
-- someone else holds an old token and deletes nothing.
DELETE FROM outbox.side
WHERE id = ANY ($1::bigint[]) AND lease_token = $2::uuid
