-- The soak's own tables, next to the outbox in the soak database.
--
-- soak_keys: one row per message key, the "aggregate" a producer updates
-- (and so locks) before it enqueues, as docs/state-machine.md asks: producers
-- of one key then get ids in commit order, which is what per-key order means.
CREATE TABLE soak_keys (
    key text PRIMARY KEY,
    version bigint NOT NULL DEFAULT 0
);

-- soak_ledger: the independent business row written in the same transaction
-- as each enqueue. It is the truth about what committed: a producer whose
-- COMMIT answer was lost looks its uid up here, and the report counts
-- "committed" from here, not from what producers believe.
CREATE TABLE soak_ledger (
    uid text PRIMARY KEY,
    producer int NOT NULL,
    seq int NOT NULL,
    key text NOT NULL,
    outbox_id bigint NOT NULL,
    poison boolean NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
