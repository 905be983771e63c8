//! The fault schedule (a pure function of the seed) and the injector that
//! applies it while producers and relays run.
//!
//! The schedule fixes each fault's kind, its time, how long it holds and
//! what share of the candidates it hits; which concrete connection or
//! process is hit depends on what exists at that moment, so a replay with the
//! same `--seed` repeats the schedule, not the exact interleaving.

use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

use super::pg::PgControl;
use super::proxy::Proxy;
use super::relays::Relays;

/// The kinds of fault the soak injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// SIGKILL one relay mid-whatever, restart it after a pause.
    RelayKill,
    /// SIGSTOP one relay for longer than its lease, then SIGCONT: a stale
    /// worker wakes up holding leases others have taken over.
    RelayStop,
    /// `pg_ctl stop -m immediate` (a crash: no checkpoint, every connection
    /// dropped, asynchronous commits in flight lost), then start again.
    PgCrash,
    /// `pg_terminate_backend` on a share of the relays' and/or producers'
    /// backends.
    TerminateBackends,
    /// The proxy closes a share of its connections.
    ProxyCut,
    /// The proxy stops forwarding on a share of its connections for a while,
    /// then resumes them (or, every other time, cuts them).
    ProxyStall,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::RelayKill,
        FaultKind::RelayStop,
        FaultKind::PgCrash,
        FaultKind::TerminateBackends,
        FaultKind::ProxyCut,
        FaultKind::ProxyStall,
    ];

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::RelayKill => "relay_sigkill",
            FaultKind::RelayStop => "relay_sigstop_past_lease",
            FaultKind::PgCrash => "pg_stop_immediate",
            FaultKind::TerminateBackends => "pg_terminate_backend",
            FaultKind::ProxyCut => "proxy_cut",
            FaultKind::ProxyStall => "proxy_stall",
        }
    }

    /// Relative frequency after the first round (which has each kind once).
    fn weight(self) -> u32 {
        match self {
            FaultKind::PgCrash => 1,
            FaultKind::RelayKill => 3,
            _ => 2,
        }
    }
}

/// One scheduled fault.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Offset from the start of production.
    pub at: Duration,
    pub kind: FaultKind,
    /// How long it holds: restart delay, stop time past the lease, downtime,
    /// stall length. Zero for instantaneous faults.
    pub hold: Duration,
    /// Share of the candidates hit (connections, backends), 0.2 to 1.
    pub share: f64,
    /// Seeds the choice of victims.
    pub pick: u64,
}

/// An endless, deterministic sequence of faults: each kind once in a seeded
/// order first (so even a short run has every kind), then weighted random
/// kinds; gaps uniform in `gap`.
pub struct Schedule {
    rng: ChaCha8Rng,
    at: Duration,
    first_round: Vec<FaultKind>,
    gap: (Duration, Duration),
}

impl Schedule {
    pub fn new(seed: u64, gap: (Duration, Duration)) -> Schedule {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xfa01_7000);
        let mut first_round = FaultKind::ALL.to_vec();
        first_round.shuffle(&mut rng);
        first_round.reverse(); // popped from the back
        Schedule {
            rng,
            at: Duration::ZERO,
            first_round,
            gap,
        }
    }
}

impl Iterator for Schedule {
    type Item = Fault;

    fn next(&mut self) -> Option<Fault> {
        let rng = &mut self.rng;
        self.at += rng.gen_range(self.gap.0..=self.gap.1);
        let kind = self.first_round.pop().unwrap_or_else(|| {
            let total: u32 = FaultKind::ALL.iter().map(|k| k.weight()).sum();
            let mut x = rng.gen_range(0..total);
            *FaultKind::ALL
                .iter()
                .find(|k| {
                    let hit = x < k.weight();
                    x = x.saturating_sub(k.weight());
                    hit
                })
                .unwrap_or(&FaultKind::RelayKill)
        });
        let hold_ms = match kind {
            FaultKind::RelayKill => rng.gen_range(0..1500),
            FaultKind::RelayStop => rng.gen_range(500..2500),
            FaultKind::PgCrash => rng.gen_range(200..2000),
            FaultKind::ProxyStall => rng.gen_range(500..3000),
            FaultKind::TerminateBackends | FaultKind::ProxyCut => 0,
        };
        Some(Fault {
            at: self.at,
            kind,
            hold: Duration::from_millis(hold_ms),
            share: rng.gen_range(0.2..=1.0),
            pick: rng.gen(),
        })
    }
}

/// A fault as it happened.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    /// When it was applied, from the start of production.
    pub at: Duration,
    pub kind: FaultKind,
    pub detail: String,
}

/// Everything the injector acts on.
pub struct Targets {
    pub relays: Arc<Relays>,
    pub proxy: Arc<Proxy>,
    pub pg: Arc<PgControl>,
    /// Direct (unix socket) connection settings for the soak database.
    pub direct: tokio_postgres::Config,
    pub lease: Duration,
}

/// Applies `schedule` from `start` until `stop`, then waits for the faults
/// still holding (a stopped relay, a stall) to end. An error means the soak
/// cannot go on (PostgreSQL did not come back).
pub async fn inject(
    targets: &Targets,
    schedule: Schedule,
    start: Instant,
    stop: CancellationToken,
) -> Result<Vec<FaultRecord>, String> {
    let mut records = Vec::new();
    let mut holding = tokio::task::JoinSet::new();
    for fault in schedule {
        tokio::select! {
            () = tokio::time::sleep_until(start + fault.at) => {}
            () = stop.cancelled() => break,
        }
        let mut rng = ChaCha8Rng::seed_from_u64(fault.pick);
        let detail = apply(targets, &fault, &mut rng, &mut holding).await?;
        records.push(FaultRecord {
            at: start.elapsed(),
            kind: fault.kind,
            detail,
        });
    }
    while holding.join_next().await.is_some() {}
    Ok(records)
}

async fn apply(
    t: &Targets,
    fault: &Fault,
    rng: &mut ChaCha8Rng,
    holding: &mut tokio::task::JoinSet<()>,
) -> Result<String, String> {
    let relays = t.relays.count().await;
    Ok(match fault.kind {
        FaultKind::RelayKill => {
            let i = rng.gen_range(0..relays);
            let pid = t.relays.kill(i).await;
            tokio::time::sleep(fault.hold).await;
            t.relays.restart(i).await?;
            format!(
                "relay {i} (pid {pid:?}) killed, restarted after {:?}",
                fault.hold
            )
        }
        FaultKind::RelayStop => {
            let i = rng.gen_range(0..relays);
            let stopped = t.lease + fault.hold;
            match t.relays.pause(i).await {
                Some(generation) => {
                    let relays = t.relays.clone();
                    holding.spawn(async move {
                        tokio::time::sleep(stopped).await;
                        relays.resume(i, generation).await;
                    });
                    format!("relay {i} stopped for {stopped:?} (lease {:?})", t.lease)
                }
                None => format!("relay {i} not running; nothing stopped"),
            }
        }
        FaultKind::PgCrash => {
            let pg = t.pg.clone();
            let hold = fault.hold;
            tokio::task::spawn_blocking(move || {
                pg.stop_immediate()?;
                std::thread::sleep(hold);
                pg.start()
            })
            .await
            .map_err(|e| format!("pg_ctl task: {e}"))??;
            format!("stopped -m immediate, down for {hold:?}, restarted")
        }
        FaultKind::TerminateBackends => {
            // Never the soak's own control connections (`soak-control`).
            let (name, groups): (&str, &[&str]) = match rng.gen_range(0..3) {
                0 => ("relays", &["soak-relay-%"]),
                1 => ("producers", &["soak-producer-%"]),
                _ => ("relays and producers", &["soak-relay-%", "soak-producer-%"]),
            };
            match terminate(&t.direct, groups, fault.share, rng).await {
                Ok(n) => format!(
                    "terminated {n} backends of the {name} (share {:.2})",
                    fault.share
                ),
                Err(e) => format!("could not terminate ({name}): {e}"),
            }
        }
        FaultKind::ProxyCut => {
            let victims = choose(t.proxy.connections(), fault.share, rng);
            let n = t.proxy.cut(&victims);
            format!("cut {n} connections (share {:.2})", fault.share)
        }
        FaultKind::ProxyStall => {
            let victims = choose(t.proxy.connections(), fault.share, rng);
            let n = t.proxy.stall(&victims);
            let then_cut = fault.pick % 2 == 1;
            let proxy = t.proxy.clone();
            let hold = fault.hold;
            holding.spawn(async move {
                tokio::time::sleep(hold).await;
                if then_cut {
                    proxy.cut(&victims);
                } else {
                    proxy.resume(&victims);
                }
            });
            format!(
                "stalled {n} connections for {hold:?}, then {}",
                if then_cut { "cut" } else { "resumed" }
            )
        }
    })
}

/// A random share (at least one) of `all`.
fn choose<T: Copy>(all: Vec<T>, share: f64, rng: &mut ChaCha8Rng) -> Vec<T> {
    if all.is_empty() {
        return all;
    }
    let n = ((all.len() as f64 * share).ceil() as usize).clamp(1, all.len());
    all.choose_multiple(rng, n).copied().collect()
}

async fn terminate(
    direct: &tokio_postgres::Config,
    groups: &[&str],
    share: f64,
    rng: &mut ChaCha8Rng,
) -> Result<usize, String> {
    let connect = tokio::time::timeout(Duration::from_secs(10), direct.connect(NoTls));
    let (client, connection) = connect
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| crate::describe_error(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let pids: Vec<i32> = client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name LIKE ANY($1) AND pid <> pg_backend_pid() ORDER BY pid",
            &[&groups],
        )
        .await
        .map_err(|e| crate::describe_error(&e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let victims = choose(pids, share, rng);
    client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid",
            &[&victims],
        )
        .await
        .map_err(|e| crate::describe_error(&e))?;
    Ok(victims.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: (Duration, Duration) = (Duration::from_millis(1500), Duration::from_millis(4000));

    #[test]
    fn a_seed_replays_the_same_schedule_and_the_first_round_has_every_kind() {
        let a: Vec<_> = Schedule::new(42, GAP).take(50).collect();
        let b: Vec<_> = Schedule::new(42, GAP).take(50).collect();
        let key = |f: &Fault| (f.at, f.kind, f.hold, f.pick);
        assert_eq!(
            a.iter().map(key).collect::<Vec<_>>(),
            b.iter().map(key).collect::<Vec<_>>()
        );
        let mut first: Vec<_> = a[..FaultKind::ALL.len()].iter().map(|f| f.kind).collect();
        first.sort();
        assert_eq!(first, FaultKind::ALL.to_vec());
        let other: Vec<_> = Schedule::new(43, GAP).take(50).map(|f| key(&f)).collect();
        assert_ne!(a.iter().map(key).collect::<Vec<_>>(), other);
    }
}
