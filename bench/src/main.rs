//! `outbox-bench`: the outbox measured against PostgreSQL's own ceilings and
//! against PgQ and pgmq, on one throwaway cluster, in one run. `make bench`
//! runs it; `make bench QUICK=1` is the same report from shorter runs.
//!
//! Absolute figures drift by 2x between runs on shared machines, so every
//! figure stands next to the ceilings and peers measured in the same run,
//! interleaved round by round, and the report leads with the ratios.
//!
//! ```text
//! outbox-bench --quick --out target/bench
//! ```

mod api;
mod claim_cost;
mod cluster;
mod drain;
mod failures;
mod footprint;
mod load;
mod ops;
mod outboxes;
mod peers;
mod report;
mod results;
mod stats;
mod steady;
mod system_info;
mod targets;
mod workloads;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use results::Results;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use workloads::Run;

/// Measure the outbox against raw PostgreSQL, PgQ and pgmq.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Shorter runs, one round, a smaller backlog: the same report in about
    /// four minutes.
    #[arg(long)]
    quick: bool,
    /// Where to write report-<time>.md and report-<time>.json.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// PostgreSQL's programs (initdb, pg_ctl, pg_test_fsync).
    #[arg(long, default_value = "/usr/lib/postgresql/15/bin")]
    pg_bin: PathBuf,
    /// Run only these workloads (comma-separated); default: all. Targets
    /// whose figures were not measured read "not measured". W3-W5 take their
    /// rate from W1's enqueue ceiling, or measure one short ceiling of their
    /// own without w1.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Workload>,
    /// Create the outbox extension at this version (e.g. 0.1.0, to compare
    /// storages with one installed build); default: the installed default.
    #[arg(long)]
    outbox_version: Option<String>,
}

/// The workloads `--only` can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// W0 (pg_test_fsync, raw inserts) and W1 (enqueue, peers).
    W1,
    /// Drain of a pre-filled backlog, against raw DELETE, PgQ, pgmq.
    W2,
    /// Steady state at 50%, 80% and flat out.
    W3,
    /// Steady state with a REPEATABLE READ snapshot held.
    W4,
    /// Steady state with an open writing transaction held.
    W5,
    /// Drain with 0%, 1%, 10% of deliveries failing.
    W6,
    /// Claim cost against blocked keys and backlog depth.
    W7,
    /// Two busy named outboxes against one of the same total load.
    W8,
}

/// How long and how big each workload is.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub name: &'static str,
    /// Interleaved rounds of W0/W1; each figure is their median.
    pub rounds: usize,
    /// Seconds per W0/W1 run.
    pub run: Duration,
    /// Messages per W2 configuration (nine of them share one backlog).
    pub drain_slice: i64,
    /// W3 at 50% and at 80% load, each.
    pub steady: Duration,
    /// W3 with producers flat out: the end-to-end ceiling.
    pub saturated: Duration,
    /// W4 (snapshot held for its middle third).
    pub held: Duration,
    /// W5 (an open writing transaction held for its middle third).
    pub writer: Duration,
    /// W6: messages published per failure rate.
    pub failure_slice: u64,
    /// W7: claims timed per level, and the backlog depths.
    pub claim_cost: claim_cost::Budget,
    /// pg_test_fsync seconds per test.
    pub fsync_secs: u32,
}

const QUICK: Plan = Plan {
    name: "quick",
    rounds: 1,
    run: Duration::from_millis(1000),
    drain_slice: 5_000,
    steady: Duration::from_secs(12),
    saturated: Duration::from_secs(6),
    held: Duration::from_secs(15),
    writer: Duration::from_secs(15),
    failure_slice: 40_000,
    claim_cost: claim_cost::Budget {
        claims: 30,
        depths: &[10_000, 100_000],
    },
    fsync_secs: 1,
};

const FULL: Plan = Plan {
    name: "full",
    rounds: 3,
    run: Duration::from_secs(4),
    drain_slice: 111_000,
    steady: Duration::from_secs(300),
    saturated: Duration::from_secs(60),
    held: Duration::from_secs(180),
    // The middle third: the 30 s hold issue #9 asks for.
    writer: Duration::from_secs(90),
    failure_slice: 300_000,
    claim_cost: claim_cost::Budget {
        claims: 200,
        depths: &[10_000, 100_000, 1_000_000],
    },
    fsync_secs: 2,
};

/// Producer client counts of W0/W1.
pub const CLIENTS: [usize; 4] = [1, 4, 16, 64];
/// The client count of the business-row and doorbell comparisons.
pub const MID_CLIENTS: usize = 16;

/// Progress lines on stderr, stamped with the time since start.
pub struct Progress(Instant);

impl Progress {
    pub fn say(&self, what: impl std::fmt::Display) {
        let s = self.0.elapsed().as_secs();
        eprintln!("[{:02}:{:02}] {what}", s / 60, s % 60);
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let plan = if args.quick { QUICK } else { FULL };
    let progress = Progress(Instant::now());
    progress.say(format_args!(
        "outbox-bench, {} plan: starting a throwaway cluster",
        plan.name
    ));

    let cluster = cluster::start(&args.pg_bin)?;
    // The cluster stops when the process exits, after Ctrl-C or SIGTERM too.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = bench(&args, plan, &progress, cluster) => result,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
        _ = term.recv() => anyhow::bail!("terminated"),
    }
}

/// Everything after the cluster is up.
async fn bench(
    args: &Args,
    plan: Plan,
    progress: &Progress,
    cluster: &cluster::Cluster,
) -> Result<()> {
    let superuser = outbox_tests::SUPERUSER;
    let admin = load::connect(&cluster.config("postgres", superuser)).await?;
    admin.batch_execute("CREATE DATABASE bench").await?;
    drop(admin);
    let mut db = cluster.config("bench", superuser);
    db.application_name("outbox-bench");
    let admin = load::connect(&db).await?;
    peers::install(cluster, &admin, args.outbox_version.as_deref()).await?;
    let info = system_info::collect(&admin).await?;

    let picked = |w: Workload| args.only.is_empty() || args.only.contains(&w);
    let fsync = if picked(Workload::W1) {
        progress.say("W0: pg_test_fsync");
        let f = system_info::pg_test_fsync(&args.pg_bin, cluster.base_dir(), plan.fsync_secs)?;
        progress.say(format_args!("W0: fdatasync {f:.0} ops/s"));
        f
    } else {
        0.0
    };

    let mut results = Results::default();
    let run = Run {
        db: &db,
        admin: &admin,
        plan: &plan,
        progress,
    };
    if picked(Workload::W1) {
        workloads::produce(run, &mut results).await?;
    }
    if picked(Workload::W2) {
        workloads::drain_all(run, &mut results).await?;
    }
    let steady_runs: Vec<&str> = [
        (Workload::W3, "W3"),
        (Workload::W4, "W4"),
        (Workload::W5, "W5"),
    ]
    .into_iter()
    .filter(|(w, _)| picked(*w))
    .map(|(_, prefix)| prefix)
    .collect();
    let steady = workloads::steady_all(run, &results, &steady_runs).await?;
    let failures = if picked(Workload::W6) {
        progress.say("W6: drain with failing deliveries");
        Some(failures::run_all(&db, &admin, plan.failure_slice, progress).await?)
    } else {
        None
    };
    let claim_cost = if picked(Workload::W7) {
        progress.say("W7: claim cost against blocked keys and backlog depth");
        Some(claim_cost::run_all(&db, &admin, plan.claim_cost, progress).await?)
    } else {
        None
    };
    if picked(Workload::W8) {
        outboxes::run(run, &mut results).await?;
    }

    let report = report::Report {
        plan,
        info,
        fsync_ops_per_sec: fsync,
        results,
        steady,
        failures,
        claim_cost,
        elapsed: progress.0.elapsed(),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let stamp = chrono::Utc::now().format("%Y-%m-%dT%H%M%SZ");
    let md = args.out.join(format!("report-{stamp}.md"));
    let js = args.out.join(format!("report-{stamp}.json"));
    std::fs::write(&js, serde_json::to_string_pretty(&report.json())?)?;
    std::fs::write(&md, report.markdown())?;
    println!("{}", report.markdown());
    progress.say(format_args!("wrote {} and {}", md.display(), js.display()));
    Ok(())
}
