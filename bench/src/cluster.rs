//! The benchmark's throwaway PostgreSQL: the test harness's cluster
//! (`outbox_tests::Cluster`, the one implementation of initdb, running as
//! `postgres` under root, and cleanup) with durable settings, unlike the
//! test clusters, which turn fsync off.

use anyhow::{anyhow, Result};
pub use outbox_tests::Cluster;
use outbox_tests::ClusterOptions;
use std::path::Path;

/// Settings beyond the harness's, printed in the report next to every other
/// non-default setting. Durability is PostgreSQL's default on purpose: the
/// outbox's claim is that a committed message survives a crash.
pub const SETTINGS: &[(&str, &str)] = &[
    ("synchronous_commit", "on"),
    ("fsync", "on"),
    ("full_page_writes", "on"),
    ("max_connections", "200"),
    ("shared_buffers", "1GB"),
    // Checkpoints come from the harness between runs (CHECKPOINT), not from
    // WAL volume or the clock in the middle of one.
    ("max_wal_size", "16GB"),
    ("checkpoint_timeout", "1h"),
];

/// initdb and start, durable, with [`SETTINGS`]. Stopped and removed when
/// the process exits (also on Ctrl-C: a watchdog stops a killed process's
/// cluster).
pub fn start(pg_bin: &Path) -> Result<&'static Cluster> {
    Cluster::try_private_with(ClusterOptions {
        durable: true,
        pg_bin: Some(pg_bin.to_owned()),
        settings: SETTINGS.iter().map(|(k, v)| format!("{k} = {v}")).collect(),
        ..ClusterOptions::default()
    })
    .map_err(|e| anyhow!(e))
}
