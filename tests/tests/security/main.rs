//! The security matrix (issue 8): privileges of every outbox object for every
//! kind of caller, search_path shadowing of every SECURITY DEFINER function,
//! SQL injection through every text argument, credential redaction in stored
//! error text, and what a producer can learn about other producers' messages.
//! Everything that can be read from the catalog is: a new function, table or
//! argument without an expectation here fails the tests that enumerate them.
//!
//! Run: `cargo test -p outbox_tests --test security -- --nocapture`.

mod common;

mod calls;
mod extension;
mod injection;
mod injection_outboxes;
mod matrix;
mod producer_view;
mod redaction;
mod revoke;
mod scenario;
mod scenario_rotation;
mod settings;
mod shadowing;
mod shadowing_outboxes;
