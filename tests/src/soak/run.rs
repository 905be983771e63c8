//! One soak run, start to verdict.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

use super::check::{check, Committed, Dead};
use super::faults::{inject, Schedule, Targets};
use super::pg::PgControl;
use super::producers::{self, ProducerSpec};
use super::proxy::Proxy;
use super::relays::{RelaySpec, Relays};
use super::report::{SoakReport, TableStats};
use super::sink::Sink;
use crate::{describe_error, Cluster, TestDb, SUPERUSER};

/// What to run. [`SoakConfig::new`] gives the CI-sized defaults.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Messages to produce in total (one transaction each; some roll back).
    pub messages: u64,
    /// Producer connections.
    pub producers: u32,
    /// `outbox-relay` processes.
    pub relays: u32,
    /// Producing lasts at most this long; messages are spread evenly over
    /// it, so faults hit a steady stream.
    pub duration: Duration,
    /// Seeds every random choice: producers, fault schedule, sink.
    pub seed: u64,
    /// Where the report (Markdown, JSON) and the relay logs go.
    pub report_dir: PathBuf,
    pub relay_bin: PathBuf,
    /// Distinct message keys, shared by the producers.
    pub keys: u32,
    pub rollback_probability: f64,
    /// Messages the sink rejects with 422: they must end as dead letters.
    pub poison_probability: f64,
    /// Deliveries the sink answers 503 (per mille).
    pub unavailable_per_mille: u64,
    /// The relays' lease: short, so SIGSTOP past it happens quickly.
    pub lease: Duration,
    pub poll_interval: Duration,
    pub batch_size: u32,
    pub concurrency: u32,
    /// Gap between two faults, uniform in this range.
    pub fault_gap: (Duration, Duration),
    /// How long the relays get to empty the outbox after the faults stop.
    pub drain_timeout: Duration,
}

impl SoakConfig {
    pub fn new(relay_bin: PathBuf, report_dir: PathBuf) -> SoakConfig {
        SoakConfig {
            messages: 20_000,
            producers: 8,
            relays: 4,
            duration: Duration::from_secs(90),
            seed: rand::random(),
            report_dir,
            relay_bin,
            keys: 200,
            rollback_probability: 0.1,
            poison_probability: 0.002,
            unavailable_per_mille: 10,
            lease: Duration::from_secs(2),
            poll_interval: Duration::from_millis(250),
            batch_size: 50,
            concurrency: 2,
            fault_gap: (Duration::from_millis(1500), Duration::from_millis(4000)),
            drain_timeout: Duration::from_secs(180),
        }
    }
}

/// `outbox-relay` next to the running executable (`target/<profile>/`), or
/// one directory up (a test binary in `target/<profile>/deps/`), or
/// `$OUTBOX_RELAY_BIN`.
pub fn find_relay_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("OUTBOX_RELAY_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("outbox-relay"))
        .find(|p| p.exists())
        .ok_or_else(|| {
            format!(
                "outbox-relay not found next to {}: build it with \
                 `cargo build -p outbox_relay --bins` (or set OUTBOX_RELAY_BIN)",
                exe.display()
            )
        })
}

/// Runs the soak and writes its report; `Err` only when the run itself could
/// not be carried out (a failed verdict is in the report).
pub async fn run(cfg: &SoakConfig) -> Result<SoakReport, String> {
    println!("soak: seed {} (replay with --seed {})", cfg.seed, cfg.seed);
    if !cfg.relay_bin.exists() {
        return Err(format!("{} does not exist", cfg.relay_bin.display()));
    }
    let started_at = chrono::Utc::now();
    let run_dir = cfg.report_dir.join(format!(
        "{}-seed{}",
        started_at.format("%Y%m%dT%H%M%S"),
        cfg.seed
    ));
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;

    let cluster = tokio::task::spawn_blocking(Cluster::private)
        .await
        .map_err(|e| format!("cluster start: {e}"))?;
    let db = TestDb::in_cluster(cluster).await;
    let admin = db.client().await;
    admin
        .batch_execute(include_str!("schema.sql"))
        .await
        .map_err(|e| describe_error(&e))?;
    admin
        .execute(
            "INSERT INTO soak_keys (key) SELECT 'k' || g FROM generate_series(0, $1 - 1) g",
            &[&(cfg.keys as i32)],
        )
        .await
        .map_err(|e| describe_error(&e))?;
    // Exact dead-tuple counts at the end (the statistics are reset by every
    // crash recovery); optional.
    let pgstattuple = admin
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        .await
        .is_ok();
    drop(admin);

    let upstream: SocketAddr = ([127, 0, 0, 1], cluster.port()).into();
    let proxy = Arc::new(
        Proxy::start(upstream)
            .await
            .map_err(|e| format!("proxy: {e}"))?,
    );
    let sink = Sink::start(cfg.seed, cfg.unavailable_per_mille)
        .await
        .map_err(|e| format!("sink: {e}"))?;
    let relays = Arc::new(
        Relays::start(
            RelaySpec {
                bin: cfg.relay_bin.clone(),
                database: format!(
                    "host=127.0.0.1 port={} user={SUPERUSER} dbname={} connect_timeout=5",
                    proxy.port(),
                    db.name()
                ),
                sink_url: sink.url.clone(),
                lease: cfg.lease,
                poll_interval: cfg.poll_interval,
                batch_size: cfg.batch_size,
                concurrency: cfg.concurrency,
                log_dir: run_dir.clone(),
            },
            cfg.relays as usize,
        )
        .await?,
    );
    let stop_supervisor = CancellationToken::new();
    let supervisor = {
        let (relays, stop) = (relays.clone(), stop_supervisor.clone());
        tokio::spawn(async move { relays.supervise(stop).await })
    };

    let mut direct = db.config(SUPERUSER);
    direct.application_name("soak-control");
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let period = cfg
        .duration
        .mul_f64(f64::from(cfg.producers) / cfg.messages.max(1) as f64);
    let mut producing = Vec::new();
    for p in 0..cfg.producers {
        let mut proxied = tokio_postgres::Config::new();
        proxied
            .host("127.0.0.1")
            .port(proxy.port())
            .user(SUPERUSER)
            .dbname(db.name())
            .application_name(format!("soak-producer-{p}"))
            .connect_timeout(Duration::from_secs(5));
        let share = cfg.messages / u64::from(cfg.producers)
            + u64::from(u64::from(p) < cfg.messages % u64::from(cfg.producers));
        producing.push(tokio::spawn(producers::run(ProducerSpec {
            index: p,
            seed: cfg.seed,
            messages: share,
            keys: cfg.keys,
            rollback_probability: cfg.rollback_probability,
            poison_probability: cfg.poison_probability,
            period,
            deadline,
            proxied,
            direct: direct.clone(),
        })));
    }
    let targets = Targets {
        relays: relays.clone(),
        proxy: proxy.clone(),
        pg: Arc::new(PgControl::new(cluster)),
        direct: direct.clone(),
        lease: cfg.lease,
    };
    let stop_faults = CancellationToken::new();
    let injecting = {
        let stop = stop_faults.clone();
        let schedule = Schedule::new(cfg.seed, cfg.fault_gap);
        async move { inject(&targets, schedule, start, stop).await }
    };
    let producing = async {
        let mut reports = Vec::new();
        for p in producing {
            reports.push(p.await.map_err(|e| format!("producer task: {e}"))?);
        }
        stop_faults.cancel();
        Ok::<_, String>(reports)
    };
    let (faults, producer_reports) = tokio::join!(injecting, producing);
    let produced_in = start.elapsed();
    let producer_reports = producer_reports?;
    let faults = faults?;
    println!(
        "soak: producing done after {produced_in:?}, {} faults; draining",
        faults.len()
    );

    // Heal everything, then let the relays empty the outbox.
    let pg = PgControl::new(cluster);
    tokio::task::spawn_blocking(move || pg.ensure_running())
        .await
        .map_err(|e| format!("pg_ctl task: {e}"))??;
    proxy.resume_all();
    relays.heal().await?;
    let drain_start = Instant::now();
    let left = drain(&direct, cfg.drain_timeout).await;
    let drained_in = drain_start.elapsed();
    // In-flight requests (a resumed stale worker's) land before counting.
    settle(&sink).await;
    stop_supervisor.cancel();
    let _ = supervisor.await;
    let unclean_exits = relays.terminate().await;

    let client = connect(&direct).await?;
    let ledger = read_ledger(&client).await?;
    let dead = read_dead(&client).await?;
    let tables = TableStats::read(&client, pgstattuple).await;
    let findings = check(&ledger, &producer_reports, &sink.log.deliveries(), &dead);

    let report = SoakReport {
        config: cfg.clone(),
        started_at,
        produced_in,
        drained_in,
        total: start.elapsed(),
        outbox_left: left,
        findings,
        faults,
        relay_starts: relays.starts.load(std::sync::atomic::Ordering::Relaxed),
        relay_unexpected_exits: relays
            .unexpected_exits
            .load(std::sync::atomic::Ordering::Relaxed),
        unclean_exits,
        proxied_connections: proxy.accepted(),
        sink_rejected: sink.log.rejected.load(std::sync::atomic::Ordering::Relaxed),
        sink_unavailable: sink
            .log
            .unavailable
            .load(std::sync::atomic::Ordering::Relaxed),
        sink_malformed: sink
            .log
            .malformed
            .load(std::sync::atomic::Ordering::Relaxed),
        tables,
        run_dir: run_dir.clone(),
    };
    report.write(&run_dir)?;
    Ok(report)
}

async fn connect(config: &tokio_postgres::Config) -> Result<Client, String> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| describe_error(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Waits until `outbox.messages` is empty; returns how many rows are left
/// (0 unless the timeout ran out).
async fn drain(direct: &tokio_postgres::Config, timeout: Duration) -> i64 {
    let give_up = Instant::now() + timeout;
    let mut client: Option<Client> = None;
    let mut left = -1;
    loop {
        if client.as_ref().is_none_or(Client::is_closed) {
            client = connect(direct).await.ok();
        }
        if let Some(c) = &client {
            match c
                .query_one("SELECT count(*) FROM outbox.messages", &[])
                .await
            {
                Ok(row) => left = row.get(0),
                Err(_) => client = None,
            }
        }
        if left == 0 || Instant::now() >= give_up {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the sink has accepted nothing new for a second (bounded).
async fn settle(sink: &Sink) {
    let give_up = Instant::now() + Duration::from_secs(15);
    let mut seen = sink.log.accepted();
    let mut quiet_since = Instant::now();
    while Instant::now() < give_up && quiet_since.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = sink.log.accepted();
        if now != seen {
            seen = now;
            quiet_since = Instant::now();
        }
    }
}

async fn read_ledger(c: &Client) -> Result<Vec<Committed>, String> {
    let rows = c
        .query("SELECT uid, key, outbox_id, poison FROM soak_ledger", &[])
        .await
        .map_err(|e| describe_error(&e))?;
    Ok(rows
        .iter()
        .map(|r| Committed {
            uid: r.get(0),
            key: r.get(1),
            outbox_id: r.get(2),
            poison: r.get(3),
        })
        .collect())
}

async fn read_dead(c: &Client) -> Result<Vec<Dead>, String> {
    let rows = c
        .query(
            "SELECT coalesce(payload->>'u', ''), id, reason::text FROM outbox.dead_letters",
            &[],
        )
        .await
        .map_err(|e| describe_error(&e))?;
    Ok(rows
        .iter()
        .map(|r| Dead {
            uid: r.get(0),
            id: r.get(1),
            reason: r.get(2),
        })
        .collect())
}
