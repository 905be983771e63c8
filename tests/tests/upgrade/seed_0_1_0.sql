-- A 0.1.0 outbox with messages in every state, written straight into its
-- tables as a superuser: the SQL functions belong to the CURRENT outbox.so,
-- which need not work against the 0.1.0 schema. Each row's payload carries a
-- "label" naming its state; the test finds rows by it.
--
-- * Times: created_at is fixed (2026-01-01), so "kept" is checked against a
--   value no upgrade could produce by accident; due times and lease expiries
--   are relative to now (1 hour ahead, 30 minutes ahead, 1 minute ago), and
--   the test moves the outbox's clock (outbox.test_clock_offset) instead of
--   waiting.
-- * Ids come from the messages sequence, dead letters' too (as enqueue then
--   fail would have made them), so the upgrade must keep new ids above them.
-- * session_replication_role = replica skips the doorbell trigger: it is the
--   current .so's code, and a 0.1.0 install never ran it against these rows.
SET session_replication_role = replica;

INSERT INTO outbox.messages
    (topic, key, payload, headers, created_at, deliver_at, attempt, max_attempts,
     lease_owner, lease_token, lease_expires_at, last_error)
VALUES
    -- ready, keyless, with headers
    ('orders', NULL, '{"label": "ready-keyless", "n": 1}',
     '{"trace-id": "t-1", "content-type": "application/json"}',
     '2026-01-01 00:00:01+00', '2026-01-01 00:00:01+00', 0, 5, NULL, NULL, NULL, NULL),
    -- ready, keyed
    ('payments', 'cust-ready', '{"label": "ready-keyed", "amount": 12.50}', NULL,
     '2026-01-01 00:00:02+00', '2026-01-01 00:00:02+00', 0, 5, NULL, NULL, NULL, NULL),
    -- ready, odd but valid text in key, payload and headers
    ('audit.events', 'clé-ü/1', '{"label": "ready-unicode", "text": "naïve ☃", "nested": {"a": [1, {"b": null}]}}',
     '{"x-note": "grüße"}',
     '2026-01-01 00:00:03+00', '2026-01-01 00:00:03+00', 0, 5, NULL, NULL, NULL, NULL),
    -- scheduled: deliver_at an hour ahead
    ('audit.events', NULL, '{"label": "scheduled-keyless"}', NULL,
     '2026-01-01 00:00:04+00', statement_timestamp() + interval '1 hour', 0, 5, NULL, NULL, NULL, NULL),
    ('orders', 'cust-sched', '{"label": "scheduled-keyed"}', '{"trace-id": "t-5"}',
     '2026-01-01 00:00:05+00', statement_timestamp() + interval '1 hour', 0, 5, NULL, NULL, NULL, NULL),
    -- retrying: failed twice, next attempt in 30 minutes
    ('payments', 'cust-retry', '{"label": "retrying"}', NULL,
     '2026-01-01 00:00:06+00', statement_timestamp() + interval '30 minutes', 2, 5, NULL, NULL, NULL,
     'broker said 503'),
    -- leased, lease valid for an hour, and a message behind it on its key
    ('orders', 'cust-leased', '{"label": "leased"}', '{"trace-id": "t-7"}',
     '2026-01-01 00:00:07+00', '2026-01-01 00:00:07+00', 1, 5,
     'relay-0.1.0', 'a0a0a0a0-0000-4000-8000-000000000001', statement_timestamp() + interval '1 hour', NULL),
    ('orders', 'cust-leased', '{"label": "leased-follower"}', NULL,
     '2026-01-01 00:00:08+00', '2026-01-01 00:00:08+00', 0, 5, NULL, NULL, NULL, NULL),
    -- leased, lease expired a minute ago (its relay died)
    ('payments', 'cust-expired', '{"label": "expired"}', NULL,
     '2026-01-01 00:00:09+00', '2026-01-01 00:00:09+00', 1, 5,
     'relay-dead', 'a0a0a0a0-0000-4000-8000-000000000002', statement_timestamp() - interval '1 minute',
     'earlier attempt: timeout'),
    -- leased on its last attempt, lease expired: the next claim dead-letters it
    ('audit.events', 'cust-last', '{"label": "expired-last-attempt"}', NULL,
     '2026-01-01 00:00:10+00', '2026-01-01 00:00:10+00', 3, 3,
     'relay-dead', 'a0a0a0a0-0000-4000-8000-000000000003', statement_timestamp() - interval '1 minute', NULL);

INSERT INTO outbox.dead_letters
    (id, topic, key, payload, headers, created_at, attempts, max_attempts, last_error, reason, died_at)
VALUES
    (nextval(pg_get_serial_sequence('outbox.messages', 'id')), 'orders', 'cust-dead',
     '{"label": "dead-permanent"}', '{"trace-id": "t-11"}',
     '2026-01-01 00:00:11+00', 1, 5, 'rejected: schema mismatch', 'permanent', '2026-01-02 00:00:00+00'),
    (nextval(pg_get_serial_sequence('outbox.messages', 'id')), 'payments', NULL,
     '{"label": "dead-max-attempts"}', NULL,
     '2026-01-01 00:00:12+00', 5, 5, 'broker said 503', 'max_attempts', '2026-01-02 00:00:01+00'),
    (nextval(pg_get_serial_sequence('outbox.messages', 'id')), 'audit.events', 'cust-dead-lease',
     '{"label": "dead-lease-expired"}', NULL,
     '2026-01-01 00:00:13+00', 3, 3, 'lease expired on the last attempt', 'lease_expired',
     '2026-01-02 00:00:02+00');

RESET session_replication_role;
