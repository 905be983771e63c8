//! Integration tests of the outbox extension over real connections, against
//! a throwaway cluster the harness starts (see `outbox_tests`).
//! One binary, one cluster; each test gets its own database.

mod common;
// Shared by the publishers' CloudEvents tests.
mod cloudevents;
mod cloudevents_http;

mod after_commit;
mod bad_input;
mod claim;
mod cli;
mod cli_messages;
mod cli_outboxes;
mod client_errors;
mod dead_letters;
mod dedup;
mod doorbell;
mod enqueue;
mod examples;
mod fail;
mod ids;
mod inspect;
mod kafka;
mod nats;
mod outboxes;
mod outboxes_grants;
mod outboxes_lifecycle;
mod outboxes_relay;
mod partitions;
mod peers;
mod per_key_order;
mod plans;
mod pooler;
mod privileges;
mod rabbitmq;
mod rabbitmq_cloudevents;
mod redis;
mod relay;
mod retention;
mod settle;
mod store;
mod trace;
mod transcripts;
mod webhook;
