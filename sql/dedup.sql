-- Idempotent enqueue: dedup keys (docs/sql-api.md, "Idempotent enqueue").
--
-- enqueue(..., dedup_key => k) writes a message only if no other message
-- holds k. A message holds its key while it is unfinished (in the log or
-- the side table: ready, scheduled, leased, retrying) and until
-- held_until = its delivery time + the dedup window, whichever is later.
-- A second enqueue with a held key writes nothing and returns the holder's
-- id. Dead letters do not hold their key: dead is final until an operator
-- requeues it.
--
-- Why a table of its own, and nothing in the log:
-- * The log is insert-only and settles whole batches by moving a cursor
--   (docs/storage.md). Whether one message is finished is a question
--   asked of its partition's window, so the key's row records the
--   partition and the question is asked only when a second enqueue meets
--   the key (outbox._message_unfinished below) or cleanup() looks at it.
--   Nothing is written per message when it is published.
-- * Plain enqueue (no dedup key) never touches this table: the measured
--   cost of the feature for callers who do not use it is nothing
--   (docs/bench).
-- * The primary key is the lock: concurrent producers with one key wait for
--   each other on the unique index (INSERT ... ON CONFLICT DO NOTHING), so
--   exactly one message is written and the others get its id. Keys are
--   taken in sorted order within a call, so two batches with the same keys
--   in a different order cannot deadlock.
CREATE TABLE outbox.dedup (
    dedup_key  text        NOT NULL,
    id         bigint      NOT NULL,
    part       smallint    NOT NULL,
    held_until timestamptz NOT NULL,
    CONSTRAINT dedup_pkey PRIMARY KEY (dedup_key)
) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);

-- cleanup() walks the keys whose window has passed, oldest first; a key
-- whose message is still unfinished is skipped and looked at again later.
CREATE INDEX dedup_held_until ON outbox.dedup (held_until);

COMMENT ON TABLE outbox.dedup IS
    'Dedup keys and the message holding each (enqueue(..., dedup_key => ...)); rows are removed by outbox.cleanup().';

SELECT pg_catalog.pg_extension_config_dump('outbox.dedup', '');

-- Is message `id` (in log partition `part`) unfinished: in the side table,
-- or in the log and not yet consumed? The log half is the rule of the view
-- outbox.messages (views.sql) for one row, found through the (part, id)
-- index: the view itself cannot be asked by id cheaply, as it does not
-- expose the partition. Keep the two together.
-- A message whose log segment was truncated is finished (rotation truncates
-- only segments whose every message was handed out), and so is one that
-- became a dead letter.
-- PL/pgSQL, not SQL: a SQL function that is not inlined is planned again in
-- every statement that calls it, and this one is called once per key met;
-- PL/pgSQL keeps its plans for the session (the reason schema.sql gives for
-- _window_snapshot). As SQL it made a duplicate enqueue cost 282 µs, most
-- of it planning (a DO loop of 20000 enqueues of held keys).
-- No SET clause, for the reason in schema.sql (_window_snapshot): it is
-- called per key met, and only from functions that pin search_path
-- (tests/tests/security/shadowing.rs, UNPINNED_BODIES).
CREATE FUNCTION outbox._message_unfinished(id bigint, part smallint) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
AS $$
BEGIN
    RETURN EXISTS (SELECT FROM outbox.side AS s WHERE s.id OPERATOR(pg_catalog.=) $1)
        OR EXISTS (
            SELECT
            FROM outbox.log AS l
            LEFT JOIN outbox.partitions AS p ON p.part OPERATOR(pg_catalog.=) l.part
            WHERE l.part OPERATOR(pg_catalog.=) $2 AND l.id OPERATOR(pg_catalog.=) $1
              AND (p.part IS NULL
                   OR l.id OPERATOR(pg_catalog.=) ANY (p.deferred)
                   OR l.id OPERATOR(pg_catalog.=) ANY (p.batch)
                   OR (NOT pg_catalog.pg_visible_in_snapshot(l.xid, p.snap_lo)
                       AND NOT (pg_catalog.pg_visible_in_snapshot(l.xid, p.snap_hi)
                                AND l.id OPERATOR(pg_catalog.<=) p.batch_end
                                AND l.id OPERATOR(pg_catalog.<>) ALL (p.batch)))));
END;
$$;
