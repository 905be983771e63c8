//! The report: ratios first (they survive a noisy machine), then every
//! absolute figure, the settings and the machine. One JSON file with all of
//! it and a Markdown rendering.

use crate::drain::CONFIGS;
use crate::ops::System::{self, Outbox, Pgmq, Pgq, Raw};
use crate::results::Results;
use crate::targets;
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
    /// W6, when it ran.
    pub failures: Option<Value>,
    /// W7, when it ran.
    pub claim_cost: Option<Value>,
    pub elapsed: Duration,
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

impl Report {
    pub fn steady(&self, label: &str) -> Option<&Value> {
        self.steady.iter().find(|(l, _)| l == label).map(|(_, v)| v)
    }

    pub fn json(&self) -> Value {
        let targets: Vec<Value> = targets::all(self).iter().map(|t| t.json()).collect();
        json!({
            "plan": self.plan.name,
            "elapsed_seconds": self.elapsed.as_secs_f64(),
            "machine_and_postgres": self.info,
            "w0_fdatasync_ops_per_sec": self.fsync_ops_per_sec,
            "targets": targets,
            "measurements": self.results.all.iter().map(|m| m.json()).collect::<Vec<_>>(),
            "steady": self.steady.iter().map(|(l, v)| json!({"run": l, "result": v})).collect::<Vec<_>>(),
            "w6_failures": self.failures,
            "w7_claim_cost": self.claim_cost,
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

        let all = targets::all(self);
        let _ = writeln!(
            s,
            "## Targets\n\n{} targets met, {} missed, {} not measured; rows without a target \
             are reported only.\n",
            all.iter().filter(|t| t.met() == Some(true)).count(),
            all.iter().filter(|t| t.met() == Some(false)).count(),
            all.iter()
                .filter(|t| t.target.is_some() && t.value.is_none())
                .count(),
        );
        s += "| measured | value | target | |\n|---|---:|---|---|\n";
        for t in &all {
            let verdict = match t.met() {
                Some(true) => "met",
                Some(false) => "**missed**",
                None if t.target.is_some() => "not measured",
                None => "",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                t.name,
                fmt_opt(t.value, t.digits),
                t.target.map_or("", |t| t.1),
                verdict
            );
        }

        let ran = |workload: &str| {
            self.results
                .all
                .iter()
                .any(|m| m.workload.contains(workload))
        };
        if ran("W1") {
            s += &self.produce_markdown();
        }
        if ran("W2") {
            s += &self.drain_markdown();
        }
        if ran("W8") {
            s += &self.outboxes_markdown();
        }
        if !self.steady.is_empty() {
            s += &self.steady_markdown();
        }
        if let Some(w6) = &self.failures {
            s += &crate::failures::markdown(w6);
        }
        if let Some(w7) = &self.claim_cost {
            s += &crate::claim_cost::markdown(w7);
        }
        s += &self.reading_and_settings();
        s
    }

    fn produce_markdown(&self) -> String {
        let mut s = String::from("\n## W0 ceilings and W1 enqueue (messages/s)\n\n");
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
        let _ = writeln!(
            s,
            "| enqueue with a dedup key: a new key / a held key (nothing written) | {MID_CLIENTS} | – | {} / {} | – | – |",
            self.cell(Outbox, "dedup_new", MID_CLIENTS, 1),
            self.cell(Outbox, "dedup_held", MID_CLIENTS, 1)
        );

        s
    }

    fn drain_markdown(&self) -> String {
        let mut s = String::from("\n## W2 drain of a pre-filled backlog (messages/s)\n\n");
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
        s += "\nWith `outbox.retention` on (every completed message also written to `outbox.published`), the outbox relay alone:\n\n| batch | concurrency | retention off | retention on |\n|---:|---:|---:|---:|\n";
        for (b, c) in crate::drain::RETENTION_CONFIGS {
            let b = b as usize;
            let _ = writeln!(
                s,
                "| {b} | {c} | {} | {} |",
                self.cell(Outbox, "drain", c, b),
                self.cell(Outbox, "drain_retention", c, b),
            );
        }

        s
    }

    fn outboxes_markdown(&self) -> String {
        let mut s = String::from("\n## W8 named outboxes: one busy outbox or two (messages/s)\n\n");
        s += "The same producers or relay workers, all on the default outbox, or split half \
              and half between it and the named outbox `b2` (schema `outbox_b2`).\n\n";
        s += "| load | all on one outbox | split over two | all on the named one |\n|---|---:|---:|---:|\n";
        let _ = writeln!(
            s,
            "| enqueue, {MID_CLIENTS} producers | {} | {} | {} |",
            self.cell(Outbox, "one_outbox", MID_CLIENTS, 1),
            self.cell(Outbox, "two_outboxes", MID_CLIENTS, 1),
            self.cell(Outbox, "named_only", MID_CLIENTS, 1),
        );
        let (b, w) = crate::outboxes::DRAIN;
        let _ = writeln!(
            s,
            "| drain, batch {b}, {w} relay workers | {} | {} | – |",
            self.cell(Outbox, "drain_one_outbox", w, b as usize),
            self.cell(Outbox, "drain_two_outboxes", w, b as usize),
        );
        s
    }

    fn steady_markdown(&self) -> String {
        let mut s = String::from("\n## W3 steady state, W4 held snapshot, W5 open writer\n\n");
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
        s += &self.tables_markdown();
        for (label, v) in self.steady.iter().filter(|(_, v)| !v["hold"].is_null()) {
            let what = if label.starts_with("W4") {
                "a REPEATABLE READ transaction holds its snapshot"
            } else {
                "another session holds a transaction that took an xid (`pg_current_xact_id()`) and sleeps"
            };
            let _ = writeln!(s, "\n{label} by phase ({what} during the middle third):\n");
            s += "| phase | produced/s | published/s | p50 ms | p99 ms | depth max | dead tuples max |\n|---|---:|---:|---:|---:|---:|---:|\n";
            for p in v["phases"].as_array().into_iter().flatten() {
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

        s
    }

    fn reading_and_settings(&self) -> String {
        let i = &self.info;
        let mut s = String::from("\n## How to read this\n\n\
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
              * The quick plan shortens W3-W7 to seconds to fit in about four minutes; its \
              latency, dead-tuple and claim-cost figures are indicative only. The full plan runs \
              each W3 load for five minutes and holds W5's open transaction for 30 s.\n",
        );
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

    /// Per table, the peaks of each W3-W5 run: where the dead tuples and
    /// bytes of the totals above sit.
    fn tables_markdown(&self) -> String {
        let mut s = String::from(
            "\nDead tuples and sizes above add up every table of the outbox found at run time \
             (0.1.0: the table `outbox.messages`; 0.2.0: the side table `outbox.side`, the log \
             `outbox.log` and its segments `outbox.log_*`, `outbox.partitions`; a \
             table that does not exist counts nothing). Per table, each column's peak:\n\n\
             | run | table | dead tuples max | table max | index max |\n|---|---|---:|---:|---:|\n",
        );
        for (label, v) in &self.steady {
            for (table, t) in v["tables"].as_object().into_iter().flatten() {
                let _ = writeln!(
                    s,
                    "| {label} | outbox.{table} | {} | {} | {} |",
                    t["dead_tuples_max"],
                    mib(&t["table_bytes_max"]),
                    mib(&t["index_bytes_max"]),
                );
            }
        }
        s
    }

    fn cell(&self, system: System, op: &str, clients: usize, batch: usize) -> String {
        fmt_opt(self.results.rate(system, op, clients, batch), 0)
    }
}

fn mib(v: &Value) -> String {
    format!("{:.1} MiB", v.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0))
}
