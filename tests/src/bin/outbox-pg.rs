//! `outbox-pg [--durable] [--setting 'name = value']... -- COMMAND [ARGS]...`:
//! run COMMAND against a throwaway PostgreSQL, in the manner of Debian's
//! `pg_virtualenv`. The cluster is the test harness's (`outbox_tests::
//! Cluster`, the one implementation: initdb, running as `postgres` under
//! root, cleanup), so the scripts (`make demo`, `doorbell-tax.sh`) do not
//! carry a shell copy of it.
//!
//! COMMAND gets `PGHOST` (the socket directory), `PGPORT`, `PGUSER`
//! (`postgres`, trusted), `PGDATABASE=postgres` and `OUTBOX_PG_DIR` (the
//! cluster's directory). The cluster is stopped and removed when COMMAND
//! ends, and by a watchdog if this process is killed. Exit status: COMMAND's;
//! 2 if the cluster could not start or COMMAND could not run.

use clap::Parser;
use outbox_tests::{Cluster, ClusterOptions, SUPERUSER};
use std::process::{Command, ExitCode};

/// Run a command against a throwaway PostgreSQL cluster.
#[derive(Debug, Parser)]
#[command(name = "outbox-pg", version, about, long_about = None)]
struct Args {
    /// Keep PostgreSQL's durable defaults (fsync, full_page_writes) instead
    /// of turning them off: for measurements.
    #[arg(long)]
    durable: bool,
    /// An extra postgresql.conf line, e.g. 'shared_buffers = 256MB';
    /// repeatable.
    #[arg(long = "setting", value_name = "LINE")]
    settings: Vec<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = ClusterOptions {
        durable: args.durable,
        settings: args.settings,
        ..ClusterOptions::default()
    };
    let cluster = match Cluster::try_private_with(options) {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("outbox-pg: {e}");
            return ExitCode::from(2);
        }
    };
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let status = Command::new(program)
        .args(rest)
        .env("PGHOST", cluster.socket_dir())
        .env("PGPORT", cluster.port().to_string())
        .env("PGUSER", SUPERUSER)
        .env("PGDATABASE", "postgres")
        .env("OUTBOX_PG_DIR", cluster.base_dir())
        .status();
    // Returning (not exiting from a signal) runs the harness's exit handler,
    // which stops the cluster and removes its directory.
    match status {
        Ok(status) => ExitCode::from(status.code().map_or(1, |c| c.clamp(0, 255) as u8)),
        Err(e) => {
            eprintln!("outbox-pg: cannot run {program}: {e}");
            ExitCode::from(2)
        }
    }
}
