-- outbox.complete() with retention on, the side table (api/history.rs):
-- complete.sql's DELETE, and the deleted rows recorded as published.
-- $1 ids bigint[], $2 lease_token uuid, $3 now timestamptz (clock.rs)
-- Returns the completed ids, as complete.sql does (settle.rs counts them):
-- from the DELETE, so the count does not depend on the INSERT.
WITH gone AS (
    DELETE FROM outbox.side
    WHERE id = ANY ($1::bigint[]) AND lease_token = $2::uuid
    RETURNING id, topic, key, payload, headers, created_at, attempt, lease_owner
),
kept AS (
    INSERT INTO outbox.published
        (id, topic, key, payload, headers, created_at, published_at, attempts, published_by)
    SELECT g.id, g.topic, g.key, g.payload, g.headers, g.created_at, $3::timestamptz,
           g.attempt, g.lease_owner
    FROM gone AS g
    ON CONFLICT (id) DO NOTHING
)
SELECT g.id FROM gone AS g
