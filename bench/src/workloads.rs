//! The workloads in the order a run takes them, each against the same
//! cluster: W0/W1 producing, W2 draining, W3-W5 steady state, W6 failing
//! deliveries, W7 claim cost. `main` picks which run (`--only`).

use crate::ops::{self, Payload, Producer, System, Write};
use crate::results::{Measurement, Results};
use crate::{drain, load, peers, steady, Plan, Progress, CLIENTS, MID_CLIENTS};
use anyhow::{Context, Result};
use std::sync::Arc;

/// What every workload runs against.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub db: &'a tokio_postgres::Config,
    pub admin: &'a tokio_postgres::Client,
    pub plan: &'a Plan,
    pub progress: &'a Progress,
}

/// W0 (raw inserts) and W1 (enqueue, peers, business row, doorbell),
/// interleaved: within a round, every system runs at a client count before
/// the next client count starts.
pub async fn produce(
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
        crate::footprint::set_doorbell(admin, false).await?;
        let off = timed(admin, mid, System::Outbox, Write::Single, &payload, plan).await;
        crate::footprint::set_doorbell(admin, true).await?;
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
        // Idempotent enqueue: a fresh key each time, and a held one (the
        // retry). Against the plain single enqueue above (no key), which is
        // the path every caller without a key takes.
        let dedup_new = timed(admin, mid, System::Outbox, Write::DedupNew, &payload, plan).await?;
        let dedup_held =
            timed(admin, mid, System::Outbox, Write::DedupHeld, &payload, plan).await?;
        for (op, t) in [
            ("doorbell_off", off),
            ("doorbell_asleep", asleep?),
            ("dedup_new", dedup_new),
            ("dedup_held", dedup_held),
        ] {
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
            "W1 round {round}/{}: business row, doorbell off/asleep, dedup keys done",
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
pub async fn drain_all(
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
    let kept = drain::with_retention(db);
    for (batch, concurrency) in drain::RETENTION_CONFIGS {
        let t = drain::run(
            &kept,
            admin,
            System::Outbox,
            batch,
            concurrency,
            plan.drain_slice as u64,
        )
        .await
        .with_context(|| {
            format!("draining outbox with retention at batch {batch} x{concurrency}")
        })?;
        drain::settle(admin).await?;
        progress.say(format_args!(
            "W2: retention on, batch {batch} x{concurrency}: outbox {:.0} msg/s",
            t.rows_per_sec()
        ));
        results.push(Measurement::new(
            "W2",
            System::Outbox,
            "drain_retention",
            concurrency,
            batch as usize,
            1,
            t.rows_per_sec(),
            t.wal_per_row(),
        ));
    }
    Ok(())
}

/// W3 at 50% and 80% of the best enqueue rate, flat out, W4 and W5.
pub async fn steady_all(
    Run {
        db,
        admin,
        plan,
        progress,
    }: Run<'_>,
    results: &Results,
    only: &[&str],
) -> Result<Vec<(String, serde_json::Value)>> {
    let mut out = Vec::new();
    if only.is_empty() {
        return Ok(out);
    }
    let best = CLIENTS
        .iter()
        .filter_map(|&c| Some((c, results.rate(System::Outbox, "single", c, 1)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let (clients, ceiling) = match best {
        Some(b) => b,
        None => own_ceiling(db, admin, plan, progress).await?,
    };
    let runs = [
        ("W3 50%", Some(0.5), plan.steady, None),
        ("W3 80%", Some(0.8), plan.steady, None),
        ("W3 saturated", None, plan.saturated, None),
        (
            "W4 50%, snapshot held",
            Some(0.5),
            plan.held,
            Some((steady::Hold::Snapshot, 1.0 / 3.0, 2.0 / 3.0)),
        ),
        (
            "W5 50%, open writer held",
            Some(0.5),
            plan.writer,
            Some((steady::Hold::Writer, 1.0 / 3.0, 2.0 / 3.0)),
        ),
    ];
    for (label, load, duration, hold) in runs
        .into_iter()
        .filter(|(label, ..)| only.iter().any(|p| label.starts_with(p)))
    {
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

/// Without W1 (`--only`): the enqueue ceiling the steady runs scale from,
/// measured once at [`MID_CLIENTS`] single-message producers.
async fn own_ceiling(
    db: &tokio_postgres::Config,
    admin: &tokio_postgres::Client,
    plan: &Plan,
    progress: &Progress,
) -> Result<(usize, f64)> {
    let mut producers = Vec::new();
    for _ in 0..MID_CLIENTS {
        producers.push(Arc::new(
            Producer::new(load::connect(db).await?, &[System::Outbox]).await?,
        ));
    }
    let payload = Arc::new(Payload::new());
    let t = timed(
        admin,
        &producers,
        System::Outbox,
        Write::Single,
        &payload,
        plan,
    )
    .await?;
    peers::reset(admin, System::Outbox).await?;
    progress.say(format_args!(
        "no W1 in this run: enqueue ceiling measured at {MID_CLIENTS} clients: {:.0} msg/s",
        t.rows_per_sec()
    ));
    Ok((MID_CLIENTS, t.rows_per_sec()))
}
