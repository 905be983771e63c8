//! The soak's report: Markdown for people, JSON for tools, both under the
//! run's directory (`target/soak/<time>-seed<seed>/`). The columns are
//! explained in the README's "make soak" section.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio_postgres::Client;

use super::check::Findings;
use super::faults::{FaultKind, FaultRecord};
use super::run::SoakConfig;

/// Size and bloat of one outbox table at the end.
#[derive(Debug, Clone, Default)]
pub struct TableStat {
    pub name: String,
    pub rows: i64,
    pub total_bytes: i64,
    /// From pgstattuple when available (exact), else pg_stat_user_tables
    /// (reset by each crash recovery).
    pub dead_tuples: i64,
    pub dead_tuples_source: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct TableStats(pub Vec<TableStat>);

impl TableStats {
    pub async fn read(c: &Client, pgstattuple: bool) -> TableStats {
        let mut stats = Vec::new();
        for name in ["outbox.messages", "outbox.dead_letters"] {
            let exact = if pgstattuple {
                c.query_one(
                    "SELECT tuple_count, dead_tuple_count FROM pgstattuple($1::text::regclass)",
                    &[&name],
                )
                .await
                .ok()
                .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
            } else {
                None
            };
            let basic = c
                .query_one(
                    "SELECT pg_total_relation_size(c.oid), coalesce(s.n_live_tup, 0), \
                     coalesce(s.n_dead_tup, 0) FROM pg_class c \
                     LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid \
                     WHERE c.oid = $1::text::regclass",
                    &[&name],
                )
                .await
                .ok();
            let (total_bytes, live, dead) = basic
                .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)))
                .unwrap_or_default();
            let (rows, dead_tuples, source) = match exact {
                Some((rows, dead)) => (rows, dead, "pgstattuple"),
                None => (live, dead, "pg_stat_user_tables"),
            };
            stats.push(TableStat {
                name: name.to_owned(),
                rows,
                total_bytes,
                dead_tuples,
                dead_tuples_source: source,
            });
        }
        TableStats(stats)
    }
}

/// Everything a run found.
#[derive(Debug, Clone)]
pub struct SoakReport {
    pub config: SoakConfig,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub produced_in: Duration,
    pub drained_in: Duration,
    pub total: Duration,
    /// Rows still in `outbox.messages` when draining stopped (0 = drained).
    pub outbox_left: i64,
    pub findings: Findings,
    pub faults: Vec<FaultRecord>,
    pub relay_starts: u64,
    pub relay_unexpected_exits: u64,
    pub unclean_exits: Vec<String>,
    pub proxied_connections: u64,
    pub sink_rejected: u64,
    pub sink_unavailable: u64,
    pub sink_malformed: u64,
    pub tables: TableStats,
    pub run_dir: PathBuf,
}

impl SoakReport {
    /// Faults applied, per kind (every kind listed, 0 included).
    pub fn faults_by_kind(&self) -> BTreeMap<&'static str, u64> {
        let mut by: BTreeMap<&'static str, u64> =
            FaultKind::ALL.iter().map(|k| (k.name(), 0)).collect();
        for f in &self.faults {
            *by.entry(f.kind.name()).or_default() += 1;
        }
        by
    }

    /// What failed; empty when the run proved everything.
    pub fn problems(&self) -> Vec<String> {
        let mut p = self.findings.problems();
        if self.outbox_left != 0 {
            p.push(format!(
                "outbox not drained: {} rows left after {:?}",
                self.outbox_left, self.config.drain_timeout
            ));
        }
        if self.sink_malformed > 0 {
            p.push(format!(
                "{} malformed webhook requests",
                self.sink_malformed
            ));
        }
        p
    }

    /// Fault kinds that never happened (a short run should have them all).
    pub fn missing_fault_kinds(&self) -> Vec<&'static str> {
        self.faults_by_kind()
            .into_iter()
            .filter(|(_, n)| *n == 0)
            .map(|(k, _)| k)
            .collect()
    }

    pub fn to_json(&self) -> Value {
        let f = &self.findings;
        let c = &self.config;
        json!({
            "seed": c.seed,
            "started_at": self.started_at.to_rfc3339(),
            "config": {
                "messages": c.messages, "producers": c.producers, "relays": c.relays,
                "duration_s": c.duration.as_secs_f64(), "keys": c.keys,
                "rollback_probability": c.rollback_probability,
                "poison_probability": c.poison_probability,
                "unavailable_per_mille": c.unavailable_per_mille,
                "lease_ms": c.lease.as_millis() as u64, "poll_interval_ms": c.poll_interval.as_millis() as u64,
                "batch_size": c.batch_size, "concurrency": c.concurrency,
            },
            "seconds": {
                "producing": self.produced_in.as_secs_f64(),
                "draining": self.drained_in.as_secs_f64(),
                "total": self.total.as_secs_f64(),
            },
            "verdict": { "passed": self.problems().is_empty(), "problems": self.problems() },
            "messages": {
                "started": f.messages, "transactions": f.transactions,
                "committed": f.committed, "rolled_back": f.rolled_back,
                "aborted_by_faults": f.aborted_by_faults,
                "ambiguous_commits": f.ambiguous, "ambiguous_committed": f.ambiguous_committed,
                "ambiguous_not_committed": f.ambiguous_not_committed,
                "unresolved": f.unresolved, "given_up": f.given_up,
                "ledger_mismatches": f.ledger_mismatches,
            },
            "delivery": {
                "deliveries": f.deliveries, "delivered": f.delivered,
                "lost": f.lost, "phantom": f.phantom, "order_violations": f.order_violations,
                "duplicates": f.duplicates, "duplicated_messages": f.duplicated_messages,
                "duplicates_redelivered": f.duplicates_redelivered,
                "duplicates_stale_worker": f.duplicates_stale_worker,
                "outbox_left": self.outbox_left,
            },
            "dead_letters": {
                "total": f.dead_letters, "by_reason": f.dead_by_reason,
                "poison_committed": f.poison_committed, "poison_dead": f.poison_dead,
                "not_poison": f.dead_not_poison,
            },
            "sink": {
                "rejected_422": self.sink_rejected, "unavailable_503": self.sink_unavailable,
                "malformed": self.sink_malformed,
            },
            "faults": self.faults_by_kind(),
            "fault_log": self.faults.iter().map(|r| json!({
                "at_s": r.at.as_secs_f64(), "kind": r.kind.name(), "detail": r.detail,
            })).collect::<Vec<_>>(),
            "relays": {
                "starts": self.relay_starts, "unexpected_exits": self.relay_unexpected_exits,
                "unclean_final_exits": self.unclean_exits,
            },
            "proxied_connections": self.proxied_connections,
            "tables": self.tables.0.iter().map(|t| json!({
                "table": t.name, "rows": t.rows, "total_bytes": t.total_bytes,
                "dead_tuples": t.dead_tuples, "dead_tuples_source": t.dead_tuples_source,
            })).collect::<Vec<_>>(),
            "samples": f.samples,
        })
    }

    pub fn to_markdown(&self) -> String {
        let f = &self.findings;
        let c = &self.config;
        let mut s = String::new();
        let problems = self.problems();
        let _ = writeln!(s, "# outbox chaos soak, seed {}\n", c.seed);
        let _ = writeln!(
            s,
            "Started {}; {} messages over {} producers, {} relays (lease {:?}, batch {}, \
             concurrency {}), {} keys, producing for at most {:?}. Replay: `--seed {}`.\n",
            self.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            c.messages,
            c.producers,
            c.relays,
            c.lease,
            c.batch_size,
            c.concurrency,
            c.keys,
            c.duration,
            c.seed
        );
        let _ = writeln!(
            s,
            "**Verdict: {}**\n",
            if problems.is_empty() {
                "passed (lost 0, phantom 0, order violations 0)".to_owned()
            } else {
                format!("FAILED: {}", problems.join("; "))
            }
        );
        let _ = writeln!(
            s,
            "Producing {:.1} s, draining {:.1} s, total {:.1} s; {:.0} committed messages/s while producing.\n",
            self.produced_in.as_secs_f64(),
            self.drained_in.as_secs_f64(),
            self.total.as_secs_f64(),
            f.committed as f64 / self.produced_in.as_secs_f64().max(0.001)
        );
        let rows: Vec<(&str, String)> = vec![
            ("messages started", f.messages.to_string()),
            ("transactions (tries)", f.transactions.to_string()),
            ("committed (ledger)", f.committed.to_string()),
            ("rolled back on purpose", f.rolled_back.to_string()),
            (
                "aborted by a fault before COMMIT (retried)",
                f.aborted_by_faults.to_string(),
            ),
            (
                "ambiguous COMMITs: committed / not (resolved from the ledger)",
                format!(
                    "{}: {} / {}",
                    f.ambiguous, f.ambiguous_committed, f.ambiguous_not_committed
                ),
            ),
            (
                "unresolved ambiguous COMMITs (must be 0)",
                f.unresolved.to_string(),
            ),
            (
                "producer belief ≠ ledger (must be 0)",
                f.ledger_mismatches.to_string(),
            ),
            ("given up (5 tries or deadline)", f.given_up.to_string()),
            ("deliveries received by the sink", f.deliveries.to_string()),
            ("delivered (distinct messages)", f.delivered.to_string()),
            ("**lost (must be 0)**", f.lost.to_string()),
            ("**phantom (must be 0)**", f.phantom.to_string()),
            (
                "**per-key order violations (must be 0)**",
                f.order_violations.to_string(),
            ),
            (
                "duplicates: redelivered after a lost lease / late send by a stale worker",
                format!(
                    "{} ({} messages): {} / {}",
                    f.duplicates,
                    f.duplicated_messages,
                    f.duplicates_redelivered,
                    f.duplicates_stale_worker
                ),
            ),
            (
                "dead letters (by reason)",
                format!("{} {:?}", f.dead_letters, f.dead_by_reason),
            ),
            (
                "poison committed / dead-lettered; other dead letters",
                format!(
                    "{} / {}; {}",
                    f.poison_committed, f.poison_dead, f.dead_not_poison
                ),
            ),
            (
                "sink answers: 422 poison / injected 503",
                format!("{} / {}", self.sink_rejected, self.sink_unavailable),
            ),
            (
                "left in outbox.messages after draining",
                self.outbox_left.to_string(),
            ),
            (
                "relay processes started / exited by themselves",
                format!("{} / {}", self.relay_starts, self.relay_unexpected_exits),
            ),
            (
                "connections through the proxy",
                self.proxied_connections.to_string(),
            ),
        ];
        let _ = writeln!(s, "| figure | value |\n| --- | --- |");
        for (k, v) in rows {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        let _ = writeln!(
            s,
            "\nLost: committed (a ledger row) but never delivered and not a dead letter. \
             Phantom: delivered or dead-lettered but not committed. Order violation: for a \
             key, the first deliveries of its messages not in id order. A message delivered \
             again after its first delivery is a duplicate, not a violation: at least once \
             allows it (consumers drop it by id). Redelivered: again at a higher attempt \
             (its holder lost the lease after the sink had it: killed, stopped, cut off, or \
             its completion lost in a crash); stale worker: again at an attempt no higher \
             than one already delivered (a stopped relay woke and sent what another relay \
             had already delivered)."
        );
        let _ = writeln!(s, "\n## Faults\n\n| kind | injected |\n| --- | --- |");
        for (k, n) in self.faults_by_kind() {
            let _ = writeln!(s, "| {k} | {n} |");
        }
        let _ = writeln!(
            s,
            "\n## Outbox tables at the end\n\n| table | rows | total size | dead tuples | counted by |\n| --- | --- | --- | --- | --- |"
        );
        for t in &self.tables.0 {
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} MiB | {} | {} |",
                t.name,
                t.rows,
                t.total_bytes as f64 / (1024.0 * 1024.0),
                t.dead_tuples,
                t.dead_tuples_source
            );
        }
        if !f.samples.is_empty() || !self.unclean_exits.is_empty() {
            let _ = writeln!(s, "\n## Examples of problems\n");
            for x in f.samples.iter().chain(&self.unclean_exits) {
                let _ = writeln!(s, "- {x}");
            }
        }
        let _ = writeln!(
            s,
            "\n## Fault log\n\n| at | kind | what happened |\n| --- | --- | --- |"
        );
        for r in &self.faults {
            let _ = writeln!(
                s,
                "| {:.1} s | {} | {} |",
                r.at.as_secs_f64(),
                r.kind.name(),
                r.detail
            );
        }
        let _ = writeln!(
            s,
            "\nRelay logs: `relay-<n>.log` next to this report ({}).",
            self.run_dir.display()
        );
        s
    }

    /// Writes `report.md` and `report.json` into `dir` and prints the
    /// Markdown's summary table.
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        let md = self.to_markdown();
        let json = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        for (name, text) in [("report.md", &md), ("report.json", &json)] {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        let summary: String = md.split("\n## Fault log").next().unwrap_or("").to_owned();
        println!(
            "{summary}\nsoak: report in {}",
            dir.join("report.md").display()
        );
        Ok(())
    }
}
