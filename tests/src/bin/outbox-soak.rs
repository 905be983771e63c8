//! `outbox-soak`: the chaos soak behind `make soak` (see the README's
//! "make soak" section and `outbox_tests::soak`).
//!
//! Exit status: 0 when nothing was lost, nothing phantom and per-key order
//! held; 1 when the verdict failed; 2 when the run could not be carried out.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use outbox_tests::soak::{find_relay_binary, run, SoakConfig};

/// Producers and outbox-relay processes under seeded faults; reports lost,
/// phantom, out-of-order and duplicate deliveries.
#[derive(Debug, Parser)]
#[command(name = "outbox-soak", version, about, long_about = None, args_override_self = true)]
struct Args {
    /// Messages to produce (one transaction each; about 10% roll back).
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Producer connections.
    #[arg(long, default_value_t = 8)]
    producers: u32,
    /// outbox-relay processes.
    #[arg(long, default_value_t = 4)]
    relays: u32,
    /// Longest time to produce for; messages are spread evenly over it.
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Seed of every random choice (default: a random one, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Where each run's directory (report.md, report.json, relay logs) goes.
    #[arg(long, default_value = "target/soak")]
    report_dir: PathBuf,
    /// Distinct message keys.
    #[arg(long, default_value_t = 200)]
    keys: u32,
    /// How long the relays may take to empty the outbox after the faults.
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// The outbox-relay binary (default: next to this one).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let relay_bin = match args
        .relay_bin
        .clone()
        .map(Ok)
        .unwrap_or_else(find_relay_binary)
    {
        Ok(bin) => bin,
        Err(e) => {
            eprintln!("outbox-soak: {e}");
            return ExitCode::from(2);
        }
    };
    if args.producers < 1 || args.relays < 1 || args.messages < 1 || args.keys < 1 {
        eprintln!("outbox-soak: --messages, --producers, --relays and --keys must be at least 1");
        return ExitCode::from(2);
    }
    let mut cfg = SoakConfig::new(relay_bin, args.report_dir);
    cfg.messages = args.messages;
    cfg.producers = args.producers;
    cfg.relays = args.relays;
    cfg.duration = args.duration;
    cfg.keys = args.keys;
    cfg.drain_timeout = args.drain_timeout;
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("outbox-soak: cannot start tokio: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&cfg)) {
        Ok(report) if report.problems().is_empty() => ExitCode::SUCCESS,
        Ok(report) => {
            eprintln!("outbox-soak: FAILED: {}", report.problems().join("; "));
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("outbox-soak: the run could not be carried out: {e}");
            ExitCode::from(2)
        }
    }
}
