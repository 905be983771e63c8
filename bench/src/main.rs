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

mod cluster;
mod drain;
mod load;
mod ops;
mod peers;
mod report;
mod results;
mod stats;
mod steady;
mod system_info;

use anyhow::{Context, Result};
use clap::Parser;
use ops::{Payload, Producer, System, Write};
use results::{Measurement, Results};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Measure the outbox against raw PostgreSQL, PgQ and pgmq.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Shorter runs, one round, a smaller backlog: the same report in under
    /// three minutes.
    #[arg(long)]
    quick: bool,
    /// Where to write report-<time>.md and report-<time>.json.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// PostgreSQL's programs (initdb, pg_ctl, pg_test_fsync).
    #[arg(long, default_value = "/usr/lib/postgresql/15/bin")]
    pg_bin: PathBuf,
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

    let cluster = cluster::Cluster::start(&args.pg_bin)?;
    // The cluster stops when `cluster` drops: on Ctrl-C or SIGTERM too.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = bench(&args, plan, &progress, &cluster) => result,
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
    let admin = load::connect(&cluster.config("postgres")).await?;
    admin.batch_execute("CREATE DATABASE bench").await?;
    drop(admin);
    let db = cluster.config("bench");
    let admin = load::connect(&db).await?;
    peers::install(cluster, &admin).await?;
    let info = system_info::collect(&admin).await?;

    progress.say("W0: pg_test_fsync");
    let fsync = system_info::pg_test_fsync(&args.pg_bin, cluster.dir(), plan.fsync_secs)?;
    progress.say(format_args!("W0: fdatasync {fsync:.0} ops/s"));

    let mut results = Results::default();
    let run = Run {
        db: &db,
        admin: &admin,
        plan: &plan,
        progress,
    };
    produce(run, &mut results).await?;
    drain_all(run, &mut results).await?;
    let steady = steady_all(run, &results).await?;

    let report = report::Report {
        plan,
        info,
        fsync_ops_per_sec: fsync,
        results,
        steady,
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

/// What every workload runs against.
#[derive(Clone, Copy)]
struct Run<'a> {
    db: &'a tokio_postgres::Config,
    admin: &'a tokio_postgres::Client,
    plan: &'a Plan,
    progress: &'a Progress,
}

/// W0 (raw inserts) and W1 (enqueue, peers, business row, doorbell),
/// interleaved: within a round, every system runs at a client count before
/// the next client count starts.
async fn produce(
    Run {
        db,
        admin,
        plan,
        progress,
    }: Run<'_>,
    results: &mut Results,
) -> Result<()> {
    let systems = [System::Raw, System::Outbox, System::Pgq, System::Pgmq];
    let max_clients = *CLIENTS.iter().max().expect("not empty");
    let mut producers = Vec::new();
    for _ in 0..max_clients {
        producers.push(Arc::new(
            Producer::new(load::connect(db).await?, &systems).await?,
        ));
    }
    let payload = Arc::new(Payload::new());
    let doorbell_relay = load::connect(db).await?;
    for round in 1..=plan.rounds {
        for clients in CLIENTS {
            for write in [Write::Single, Write::Batch] {
                for system in systems {
                    let t =
                        timed(admin, &producers[..clients], system, write, &payload, plan).await?;
                    results.push(Measurement::new(
                        "W0/W1",
                        system,
                        write.name(),
                        clients,
                        if write == Write::Batch { ops::BATCH } else { 1 },
                        round,
                        t.rows_per_sec(),
                        t.wal_per_row(),
                    ));
                }
                progress.say(format_args!(
                    "W1 round {round}/{}: {} x{clients}: raw {:.0}, outbox {:.0}, pgq {:.0}, pgmq {:.0} msg/s",
                    plan.rounds,
                    write.name(),
                    last(results, System::Raw),
                    last(results, System::Outbox),
                    last(results, System::Pgq),
                    last(results, System::Pgmq),
                ));
            }
        }
        let mid = &producers[..MID_CLIENTS];
        for system in [System::Raw, System::Outbox] {
            let t = timed(admin, mid, system, Write::WithBusinessRow, &payload, plan).await?;
            results.push(Measurement::new(
                "W1",
                system,
                Write::WithBusinessRow.name(),
                MID_CLIENTS,
                1,
                round,
                t.tx_per_sec(),
                t.wal_per_row(),
            ));
        }
        // Doorbell: "busy" (installed, no relay asleep) is the single-write
        // figure above; here the trigger disabled, and a relay asleep.
        admin
            .batch_execute("ALTER TABLE outbox.messages DISABLE TRIGGER doorbell")
            .await?;
        let off = timed(admin, mid, System::Outbox, Write::Single, &payload, plan).await;
        admin
            .batch_execute("ALTER TABLE outbox.messages ENABLE TRIGGER doorbell")
            .await?;
        let off = off?;
        let armed: String = doorbell_relay
            .query_one("SELECT outbox.doorbell_arm()", &[])
            .await?
            .get(0);
        anyhow::ensure!(
            armed == "armed",
            "the sleeping relay could not arm the doorbell: {armed}"
        );
        doorbell_relay
            .batch_execute("LISTEN outbox_doorbell")
            .await?;
        let asleep = timed(admin, mid, System::Outbox, Write::Single, &payload, plan).await;
        doorbell_relay
            .batch_execute("UNLISTEN *; SELECT outbox.doorbell_disarm()")
            .await?;
        for (op, t) in [("doorbell_off", off), ("doorbell_asleep", asleep?)] {
            results.push(Measurement::new(
                "W1",
                System::Outbox,
                op,
                MID_CLIENTS,
                1,
                round,
                t.tx_per_sec(),
                t.wal_per_row(),
            ));
        }
        progress.say(format_args!(
            "W1 round {round}/{}: business row, doorbell off/asleep done",
            plan.rounds
        ));
    }
    for system in systems {
        peers::reset(admin, system).await?;
    }
    Ok(())
}

fn last(results: &Results, system: System) -> f64 {
    results
        .all
        .iter()
        .rev()
        .find(|m| m.system == system)
        .map_or(0.0, |m| m.per_sec)
}

/// Empty `system`, checkpoint, then one closed-loop run.
async fn timed(
    admin: &tokio_postgres::Client,
    producers: &[Arc<Producer>],
    system: System,
    write: Write,
    payload: &Arc<Payload>,
    plan: &Plan,
) -> Result<load::Throughput> {
    peers::reset(admin, system).await?;
    admin.batch_execute("CHECKPOINT").await?;
    load::closed_loop(admin, producers, system, write, payload, plan.run).await
}

/// W2: one pre-filled backlog per system, drained slice by slice.
async fn drain_all(
    Run {
        db,
        admin,
        plan,
        progress,
    }: Run<'_>,
    results: &mut Results,
) -> Result<()> {
    progress.say(format_args!(
        "W2: pre-filling {} messages per system",
        plan.drain_slice * drain::CONFIGS.len() as i64
    ));
    drain::prefill(admin, plan.drain_slice).await?;
    for (batch, concurrency) in drain::CONFIGS {
        let mut line = format!("W2: batch {batch} x{concurrency}:");
        for system in [System::Raw, System::Outbox, System::Pgmq, System::Pgq] {
            if system == System::Pgq && concurrency != 1 {
                continue;
            }
            let t = drain::run(
                db,
                admin,
                system,
                batch,
                concurrency,
                plan.drain_slice as u64,
            )
            .await
            .with_context(|| {
                format!("draining {} at batch {batch} x{concurrency}", system.name())
            })?;
            drain::settle(admin).await?;
            line += &format!(" {} {:.0}", system.name(), t.rows_per_sec());
            results.push(Measurement::new(
                "W2",
                system,
                "drain",
                concurrency,
                batch as usize,
                1,
                t.rows_per_sec(),
                t.wal_per_row(),
            ));
        }
        progress.say(line + " msg/s");
    }
    Ok(())
}

/// W3 at 50% and 80% of the best enqueue rate, flat out, and W4.
async fn steady_all(
    Run {
        db,
        admin,
        plan,
        progress,
    }: Run<'_>,
    results: &Results,
) -> Result<Vec<(String, serde_json::Value)>> {
    let (clients, ceiling) = CLIENTS
        .iter()
        .filter_map(|&c| Some((c, results.rate(System::Outbox, "single", c, 1)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .context("no W1 enqueue figure")?;
    let mut out = Vec::new();
    let runs = [
        ("W3 50%", Some(0.5), plan.steady, None),
        ("W3 80%", Some(0.8), plan.steady, None),
        ("W3 saturated", None, plan.saturated, None),
        (
            "W4 50%, snapshot held",
            Some(0.5),
            plan.held,
            Some((1.0 / 3.0, 2.0 / 3.0)),
        ),
    ];
    for (label, load, duration, hold) in runs {
        progress.say(format_args!(
            "{label}: {} s with {clients} producers{}",
            duration.as_secs(),
            load.map(|l| format!(" at {:.0} msg/s", l * ceiling))
                .unwrap_or_default()
        ));
        let spec = steady::Spec {
            rate: load.map(|l| l * ceiling),
            producers: clients,
            duration,
            hold,
        };
        let mut r = steady::run(db, admin, &spec)
            .await
            .with_context(|| label.to_owned())?;
        r["load_fraction_of_w1_ceiling"] = load.into();
        progress.say(format_args!(
            "{label}: published {:.0} msg/s, p50 {:.1} ms, p99 {:.1} ms",
            r["published_per_sec"].as_f64().unwrap_or(0.0),
            r["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
            r["latency_ms"]["p99"].as_f64().unwrap_or(0.0)
        ));
        out.push((label.to_owned(), r));
    }
    Ok(out)
}
