-- Dead letters and stuck keys, from psql. Run in a database with the extension:
--   psql -v ON_ERROR_STOP=1 -f examples/psql/dead_letters.sql
SET outbox.retry_jitter = 0;

-- A message the consumer can never accept: fail it permanently.
SELECT outbox.enqueue('invoices.issued', '{"invoice": "INV-1", "amount": "NaN"}', key => 'customer-7');
SELECT outbox.enqueue('invoices.issued', '{"invoice": "INV-2", "amount": "10.00"}', key => 'customer-7');
SELECT id, lease_token FROM outbox.claim('psql-relay', 1) \gset
SELECT * FROM outbox.fail(:id, :'lease_token', 'schema validation failed: amount', permanent => true);

-- The dead letter, with why and when it died.
SELECT id, topic, key, attempts, reason, last_error FROM outbox.list_dead('invoices.issued');

-- The key moved on: INV-2 is claimable now. Fail it once to see a retrying head.
SELECT id, lease_token FROM outbox.claim('psql-relay', 1) \gset
SELECT state, attempt FROM outbox.fail(:id, :'lease_token', 'broker timeout', retry_in => '1 minute');
SELECT outbox.enqueue('invoices.issued', '{"invoice": "INV-3"}', key => 'customer-7');
SELECT key, head_id, head_state, waiting, head_last_error FROM outbox.blocked_keys();

-- Replay the dead letter once the consumer is fixed, or throw it away.
SELECT outbox.requeue_dead_topic('invoices.issued');
SELECT topic, ready, blocked, scheduled, leased, dead FROM outbox.stats();
