//! The report: ratios first (they survive a noisy machine), then every
//! absolute figure, the settings and the machine. One JSON file with all of
//! it and a Markdown rendering.

use crate::drain::CONFIGS;
use crate::ops::System::{self, Outbox, Pgmq, Pgq, Raw};
use crate::results::Results;
use crate::{Plan, CLIENTS, MID_CLIENTS};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::time::Duration;

pub struct Report {
    pub plan: Plan,
    pub info: Value,
    pub fsync_ops_per_sec: f64,
    pub results: Results,
    pub steady: Vec<(String, Value)>,
    pub elapsed: Duration,
}

/// A ratio row: its name, value, and the target it is held to.
struct Ratio {
    name: String,
    value: Option<f64>,
    /// (at least, how the target reads); `None` = reported, no target.
    target: Option<(f64, &'static str)>,
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

impl Report {
    fn steady(&self, label: &str) -> Option<&Value> {
        self.steady.iter().find(|(l, _)| l == label).map(|(_, v)| v)
    }

    /// The best raw single-row insert rate over the client counts.
    fn raw_insert_ceiling(&self) -> Option<f64> {
        CLIENTS
            .iter()
            .filter_map(|&c| self.results.rate(Raw, "single", c, 1))
            .max_by(f64::total_cmp)
    }

    fn ratios(&self) -> Vec<Ratio> {
        let r = &self.results;
        let mut out = Vec::new();
        let mut push = |name: String, value, target| {
            out.push(Ratio {
                name,
                value,
                target,
            })
        };
        for (op, b, what) in [
            ("single", 1, "enqueue ÷ raw insert, single row"),
            ("batch", 100, "enqueue_batch ÷ raw batch insert, 100 rows"),
        ] {
            for c in CLIENTS {
                push(
                    format!("{what}, {c} clients"),
                    r.ratio((Outbox, op, c, b), (Raw, op, c, b)),
                    Some((0.9, "≥ 0.9")),
                );
            }
        }
        push(
            format!("business row + enqueue ÷ business row + raw insert, {MID_CLIENTS} clients"),
            r.ratio(
                (Outbox, "business_row", MID_CLIENTS, 1),
                (Raw, "business_row", MID_CLIENTS, 1),
            ),
            Some((0.9, "≥ 0.9")),
        );
        push(
            format!("doorbell tax: installed, relays busy ÷ trigger off, {MID_CLIENTS} clients"),
            r.ratio(
                (Outbox, "single", MID_CLIENTS, 1),
                (Outbox, "doorbell_off", MID_CLIENTS, 1),
            ),
            None,
        );
        push(
            format!(
                "doorbell tax: a relay asleep that never wakes (every commit rings) ÷ trigger off, {MID_CLIENTS} clients"
            ),
            r.ratio(
                (Outbox, "doorbell_asleep", MID_CLIENTS, 1),
                (Outbox, "doorbell_off", MID_CLIENTS, 1),
            ),
            None,
        );
        for (b, c) in CONFIGS {
            let b = b as usize;
            push(
                format!("drain ÷ raw drain, batch {b} x{c}"),
                r.ratio((Outbox, "drain", c, b), (Raw, "drain", c, b)),
                Some((0.8, "≥ 0.8")),
            );
        }
        for peer in [Pgq, Pgmq] {
            for c in CLIENTS {
                for (op, b) in [("single", 1), ("batch", 100)] {
                    push(
                        format!("outbox ÷ {} enqueue, {op}, {c} clients", peer.name()),
                        r.ratio((Outbox, op, c, b), (peer, op, c, b)),
                        Some((1.0, "> 1")),
                    );
                }
            }
            for (b, c) in CONFIGS {
                let b = b as usize;
                if peer == Pgq && c != 1 {
                    continue;
                }
                push(
                    format!("outbox ÷ {} drain, batch {b} x{c}", peer.name()),
                    r.ratio((Outbox, "drain", c, b), (peer, "drain", c, b)),
                    Some((1.0, "> 1")),
                );
            }
        }
        let sustained = self
            .steady("W3 saturated")
            .and_then(|v| v["published_per_sec"].as_f64());
        push(
            "end-to-end sustained (enqueue → publish, producers flat out) ÷ best raw insert"
                .to_owned(),
            sustained.zip(self.raw_insert_ceiling()).map(|(s, c)| s / c),
            None,
        );
        push(
            "WAL amplification: outbox bytes/message (W3 50%) ÷ raw insert + raw drain".to_owned(),
            self.wal_amplification(),
            None,
        );
        out
    }

    /// Outbox end-to-end WAL per message over what a raw insert (16
    /// clients) plus a raw drain (batch 100 x2) write per message.
    fn wal_amplification(&self) -> Option<f64> {
        let ours = self.steady("W3 50%")?["wal_bytes_per_message"].as_f64()?;
        let raw = self.results.wal(Raw, "single", MID_CLIENTS, 1)?
            + self.results.wal(Raw, "drain", 2, 100)?;
        Some(ours / raw)
    }

    fn p50_at_half_load(&self) -> Option<f64> {
        self.steady("W3 50%")?["latency_ms"]["p50"].as_f64()
    }

    pub fn json(&self) -> Value {
        let ratios: Vec<Value> = self
            .ratios()
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "value": r.value,
                    "target": r.target.map(|t| t.1),
                    "met": r.value.zip(r.target).map(|(v, (t, s))| met(v, t, s)),
                })
            })
            .collect();
        json!({
            "plan": self.plan.name,
            "elapsed_seconds": self.elapsed.as_secs_f64(),
            "machine_and_postgres": self.info,
            "w0_fdatasync_ops_per_sec": self.fsync_ops_per_sec,
            "ratios": ratios,
            "w3_p50_ms_at_50_percent": self.p50_at_half_load(),
            "measurements": self.results.all.iter().map(|m| m.json()).collect::<Vec<_>>(),
            "steady": self.steady.iter().map(|(l, v)| json!({"run": l, "result": v})).collect::<Vec<_>>(),
        })
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let i = &self.info;
        let _ = writeln!(
            s,
            "# outbox benchmark: {} plan, {}\n",
            self.plan.name,
            i["date"].as_str().unwrap_or("?")
        );
        let _ = writeln!(
            s,
            "Machine: {} ({} cores, {} GiB), Linux {}. {}. Run took {:.0} s. \
             Produced by `make bench{}` (`bench/`).\n",
            i["cpu"].as_str().unwrap_or("?"),
            i["cores"],
            i["memory_gib"],
            i["kernel"].as_str().unwrap_or("?"),
            i["postgres"].as_str().unwrap_or("?"),
            self.elapsed.as_secs_f64(),
            if self.plan.name == "quick" {
                " QUICK=1"
            } else {
                ""
            },
        );
        let _ = writeln!(
            s,
            "Every figure below was measured in this one run on one cluster; W0/W1 \
             figures are medians of {} interleaved round(s) of {:.0} s per system. \
             Read the ratios: absolute figures on a shared machine drift by 2x between runs.\n",
            self.plan.rounds,
            self.plan.run.as_secs_f64()
        );

        s += "## Ratios and targets\n\n| ratio | value | target | |\n|---|---:|---|---|\n";
        for r in self.ratios() {
            let verdict = match r.value.zip(r.target) {
                Some((v, (t, sym))) if met(v, t, sym) => "met",
                Some(_) => "**missed**",
                None => "",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                r.name,
                fmt_opt(r.value, 3),
                r.target.map_or("", |t| t.1),
                verdict
            );
        }
        let p50 = self.p50_at_half_load();
        let _ = writeln!(
            s,
            "| end-to-end p50 latency at 50% load (ms) | {} | < 10 | {} |",
            fmt_opt(p50, 1),
            match p50 {
                Some(v) if v < 10.0 => "met",
                Some(_) => "**missed**",
                None => "",
            }
        );

        s += "\n## W0 ceilings and W1 enqueue (messages/s)\n\n";
        let _ = writeln!(
            s,
            "`pg_test_fsync` fdatasync (one 8 kB write): **{:.0} ops/s**.\n",
            self.fsync_ops_per_sec
        );
        s += "| write | clients | raw PostgreSQL | outbox | PgQ | pgmq |\n|---|---:|---:|---:|---:|---:|\n";
        for (op, b) in [("single", 1), ("batch", 100)] {
            for c in CLIENTS {
                let _ = writeln!(
                    s,
                    "| {} | {c} | {} | {} | {} | {} |",
                    if b == 1 {
                        "one row per tx"
                    } else {
                        "100 rows per tx"
                    },
                    self.cell(Raw, op, c, b),
                    self.cell(Outbox, op, c, b),
                    self.cell(Pgq, op, c, b),
                    self.cell(Pgmq, op, c, b),
                );
            }
        }
        let _ = writeln!(
            s,
            "| business row + message | {MID_CLIENTS} | {} | {} | – | – |",
            self.cell(Raw, "business_row", MID_CLIENTS, 1),
            self.cell(Outbox, "business_row", MID_CLIENTS, 1)
        );
        let _ = writeln!(
            s,
            "| doorbell trigger off / a relay asleep, never waking | {MID_CLIENTS} | – | {} / {} | – | – |",
            self.cell(Outbox, "doorbell_off", MID_CLIENTS, 1),
            self.cell(Outbox, "doorbell_asleep", MID_CLIENTS, 1)
        );

        s += "\n## W2 drain of a pre-filled backlog (messages/s)\n\n";
        let _ = writeln!(
            s,
            "{} messages per configuration, one backlog of {} per system drained slice by slice \
             (VACUUM and CHECKPOINT between slices). The outbox drains with its relay and a \
             publisher that acknowledges at once; PgQ has one consumer, so concurrency 1 only.\n",
            self.plan.drain_slice,
            self.plan.drain_slice * CONFIGS.len() as i64 + 50_000
        );
        s += "| batch | concurrency | raw DELETE … SKIP LOCKED | outbox relay | pgmq read+delete | PgQ |\n|---:|---:|---:|---:|---:|---:|\n";
        for (b, c) in CONFIGS {
            let b = b as usize;
            let _ = writeln!(
                s,
                "| {b} | {c} | {} | {} | {} | {} |",
                self.cell(Raw, "drain", c, b),
                self.cell(Outbox, "drain", c, b),
                self.cell(Pgmq, "drain", c, b),
                self.cell(Pgq, "drain", c, b),
            );
        }

        s += "\n## W3 steady state and W4 held snapshot\n\n";
        s += "Producers commit one `outbox.enqueue` per transaction at a fraction of the best W1 \
              enqueue rate; the relay (batch 100, 2 workers, doorbell on) publishes to a recorder. \
              Latency runs from the producer's commit returning to the publisher receiving the message.\n\n";
        s += "| run | offered/s | produced/s | published/s | p50 ms | p99 ms | p99.9 ms | depth max | dead tuples max / end | table max | index max | WAL B/msg |\n";
        s += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        for (label, v) in &self.steady {
            let _ = writeln!(
                s,
                "| {label} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} / {} | {} | {} | {:.0} |",
                v["offered_per_sec"].as_f64().map_or("flat out".to_owned(), |r| format!("{r:.0}")),
                v["produced_per_sec"].as_f64().unwrap_or(0.0),
                v["published_per_sec"].as_f64().unwrap_or(0.0),
                v["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
                v["latency_ms"]["p99"].as_f64().unwrap_or(0.0),
                v["latency_ms"]["p99_9"].as_f64().unwrap_or(0.0),
                v["depth_max"],
                v["dead_tuples_max"],
                v["dead_tuples_end"],
                mib(&v["table_bytes_max"]),
                mib(&v["index_bytes_max"]),
                v["wal_bytes_per_message"].as_f64().unwrap_or(0.0),
            );
        }
        if let Some(w4) = self.steady.iter().find(|(l, _)| l.starts_with("W4")) {
            s += "\nW4 by phase (a REPEATABLE READ transaction holds its snapshot during the middle third):\n\n";
            s += "| phase | produced/s | published/s | p50 ms | p99 ms | depth max | dead tuples max |\n|---|---:|---:|---:|---:|---:|---:|\n";
            for p in w4.1["phases"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    s,
                    "| {} | {:.0} | {:.0} | {:.1} | {:.1} | {} | {} |",
                    p["phase"].as_str().unwrap_or("?"),
                    p["produced_per_sec"].as_f64().unwrap_or(0.0),
                    p["published_per_sec"].as_f64().unwrap_or(0.0),
                    p["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
                    p["latency_ms"]["p99"].as_f64().unwrap_or(0.0),
                    p["depth_max"],
                    p["dead_tuples_max"],
                );
            }
        }

        s += "\n## How to read this\n\n\
              * Raw PostgreSQL is the ceiling, not a competitor: a plain table of the outbox \
              table's shape, written with one INSERT and drained with one `DELETE ... FOR UPDATE \
              SKIP LOCKED` per batch, with no leases, retries, ordering or fencing.\n\
              * The outbox drain is its real relay: per batch a `claim` (a leased UPDATE) and a \
              `complete_batch` (a DELETE), pipelined into one transaction when the whole batch \
              was acknowledged, and each payload decoded into JSON for the publisher. The raw drain and pgmq/PgQ fetch the rows but decode \
              nothing.\n\
              * PgQ batches are per consumer and bounded by ticks placed while the backlog was \
              written; its drain runs at concurrency 1 only.\n\
              * The doorbell \"asleep\" figure keeps one armed relay asleep for the whole run, so \
              every commit rings: the worst case. A real relay wakes on the first ring and stops \
              the ringing; W3 measures that case.\n\
              * The quick plan shortens W3/W4 to seconds to fit in three minutes; its latency \
              and dead-tuple figures are indicative only. The full plan runs each W3 load for \
              five minutes.\n";
        s += "\n## PostgreSQL settings that differ from the defaults\n\n| setting | value | source |\n|---|---|---|\n";
        for st in i["settings"].as_array().into_iter().flatten() {
            let _ = writeln!(
                s,
                "| {} | {}{} | {} |",
                st["name"].as_str().unwrap_or("?"),
                st["setting"].as_str().unwrap_or("?"),
                st["unit"].as_str().unwrap_or(""),
                st["source"].as_str().unwrap_or("?")
            );
        }
        s += "\nExtensions: ";
        let ext: Vec<String> = i["extensions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{} {}",
                    e["extension"].as_str().unwrap_or("?"),
                    e["version"].as_str().unwrap_or("?")
                )
            })
            .collect();
        s += &ext.join(", ");
        s += ".\n";
        s
    }

    fn cell(&self, system: System, op: &str, clients: usize, batch: usize) -> String {
        fmt_opt(self.results.rate(system, op, clients, batch), 0)
    }
}

fn met(value: f64, target: f64, how: &str) -> bool {
    if how.starts_with('>') {
        value > target
    } else {
        value >= target
    }
}

fn mib(v: &Value) -> String {
    format!("{:.1} MiB", v.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0))
}
