//! The chaos soak behind `make soak`: producers and real `outbox-relay`
//! processes on a cluster of the soak's own, while a seeded schedule of
//! faults hits them — relays SIGKILLed and SIGSTOPped past their lease,
//! PostgreSQL crashed (`pg_ctl stop -m immediate`), backends terminated,
//! connections cut and stalled by a TCP proxy in between — and then the
//! verdict: nothing lost, nothing phantom, per-key order kept.
//!
//! - [`proxy`]: the TCP proxy that cuts and stalls connections.
//! - [`producers`]: enqueue + ledger row per transaction, ambiguous
//!   COMMITs resolved from the ledger.
//! - [`relays`]: the `outbox-relay` processes and their supervisor.
//! - [`sink`]: the webhook endpoint the relays publish to.
//! - [`faults`]: the schedule and the injector.
//! - [`pg`]: `pg_ctl stop -m immediate` and start, as the server's OS user.
//! - [`check`]: lost / phantom / order / duplicates.
//! - [`report`]: Markdown and JSON.

pub mod check;
pub mod faults;
pub mod pg;
pub mod producers;
pub mod proxy;
pub mod relays;
pub mod report;
mod run;
pub mod sink;

pub use report::SoakReport;
pub use run::{find_relay_binary, run, SoakConfig};
