-- Two services in one database, each with an outbox of its own, from psql.
-- Run as the extension's owner (or a superuser) in a database with the
-- extension:   psql -v ON_ERROR_STOP=1 -f examples/psql/named_outboxes.sql
SELECT outbox.create_outbox('billing');      -- schema outbox_billing
SELECT outbox.create_outbox('shipping');     -- schema outbox_shipping
SELECT name, schema FROM outbox.outboxes ORDER BY name;

-- Each service's producer role may write into its own outbox only.
CREATE ROLE example_billing_app;
SELECT outbox.grant_producer('example_billing_app', outbox => 'billing');
CREATE ROLE example_shipping_relay;
SELECT outbox.grant_relay('example_shipping_relay', outbox => 'shipping');

-- The services write in their own transactions, into their own outboxes.
BEGIN;
SELECT outbox_billing.enqueue('invoice.sent', '{"invoice": "INV-7"}', key => 'customer-3');
COMMIT;
BEGIN;
SELECT outbox_shipping.enqueue('parcel.shipped', '{"parcel": "P-19"}', key => 'order-42');
COMMIT;

-- A relay of one outbox sees only that outbox's messages
-- (outbox-relay --outbox shipping does the same).
SELECT id, lease_token FROM outbox_shipping.claim('shipping-relay', 10) \gset
SELECT outbox_shipping.complete(:id, :'lease_token');
SELECT 'billing' AS outbox, topic, ready FROM outbox_billing.stats()
UNION ALL
SELECT 'shipping', topic, ready FROM outbox_shipping.stats();

-- Each outbox rings its own doorbell channel.
SELECT outbox_billing.doorbell_channel(), outbox_shipping.doorbell_channel();

-- Dropping an outbox that still holds messages needs force => true.
SELECT outbox.drop_outbox('shipping');
SELECT outbox.drop_outbox('billing', force => true);
SELECT outbox.revoke_all('example_billing_app');
SELECT outbox.revoke_all('example_shipping_relay');
DROP ROLE example_billing_app;
DROP ROLE example_shipping_relay;
