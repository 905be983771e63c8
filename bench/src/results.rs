//! Every figure a run produced, and the medians and ratios drawn from them.

use crate::ops::System;
use crate::stats::median;
use serde_json::{json, Value};

/// One timed run.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// "W0/W1" (ceilings and enqueue) or "W2" (drain).
    pub workload: &'static str,
    pub system: System,
    /// "single", "batch", "business_row", "doorbell_off", "doorbell_asleep",
    /// "drain".
    pub op: &'static str,
    /// Producer clients, or drain concurrency.
    pub clients: usize,
    /// Messages per statement (1 for single writes).
    pub batch: usize,
    pub round: usize,
    /// Messages per second (= transactions per second for single writes).
    pub per_sec: f64,
    pub wal_per_message: f64,
}

impl Measurement {
    #[allow(clippy::too_many_arguments)] // one per column of the report
    pub fn new(
        workload: &'static str,
        system: System,
        op: &'static str,
        clients: usize,
        batch: usize,
        round: usize,
        per_sec: f64,
        wal_per_message: f64,
    ) -> Measurement {
        Measurement {
            workload,
            system,
            op,
            clients,
            batch,
            round,
            per_sec,
            wal_per_message,
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "workload": self.workload,
            "system": self.system.name(),
            "op": self.op,
            "clients": self.clients,
            "batch": self.batch,
            "round": self.round,
            "messages_per_sec": self.per_sec,
            "wal_bytes_per_message": self.wal_per_message,
        })
    }
}

/// All measurements of a run, queried by what they measured.
#[derive(Default)]
pub struct Results {
    pub all: Vec<Measurement>,
}

impl Results {
    pub fn push(&mut self, m: Measurement) {
        self.all.push(m);
    }

    fn matching(
        &self,
        system: System,
        op: &str,
        clients: usize,
        batch: usize,
    ) -> Vec<&Measurement> {
        self.all
            .iter()
            .filter(|m| {
                m.system == system && m.op == op && m.clients == clients && m.batch == batch
            })
            .collect()
    }

    /// Median messages/s over the rounds; `None` if never measured.
    pub fn rate(&self, system: System, op: &str, clients: usize, batch: usize) -> Option<f64> {
        self.median_of(system, op, clients, batch, |m| m.per_sec)
    }

    /// Median WAL bytes per message over the rounds.
    pub fn wal(&self, system: System, op: &str, clients: usize, batch: usize) -> Option<f64> {
        self.median_of(system, op, clients, batch, |m| m.wal_per_message)
    }

    fn median_of(
        &self,
        system: System,
        op: &str,
        clients: usize,
        batch: usize,
        field: fn(&Measurement) -> f64,
    ) -> Option<f64> {
        let v: Vec<f64> = self
            .matching(system, op, clients, batch)
            .into_iter()
            .map(field)
            .collect();
        (!v.is_empty()).then(|| median(&v))
    }

    /// `a ÷ b` of two medians, when both were measured.
    pub fn ratio(
        &self,
        a: (System, &str, usize, usize),
        b: (System, &str, usize, usize),
    ) -> Option<f64> {
        Some(self.rate(a.0, a.1, a.2, a.3)? / self.rate(b.0, b.1, b.2, b.3)?)
    }
}
