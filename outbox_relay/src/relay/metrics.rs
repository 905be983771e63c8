//! What the relay counts: [`Counters`], the one sink every worker and the
//! doorbell report to, which keeps [`RelayStats`] (read by the embedding
//! program) and the Prometheus [`Metrics`] (served by `super::health`)
//! from one call per event.

use super::RelayStats;
use crate::{FailOutcome, Message};
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The relay's metrics, all prefixed `outbox_relay_`.
pub(crate) struct Metrics {
    registry: Registry,
    published: IntCounterVec,
    failed: IntCounterVec,
    dead: IntCounterVec,
    batch_seconds: Histogram,
    lag_seconds: Histogram,
    pub(super) backlog: IntGaugeVec,
    pub(super) oldest_ready_seconds: GaugeVec,
    pub(super) up: Gauge,
    pub(super) ready: AtomicBool,
}

impl Metrics {
    pub(crate) fn new() -> Arc<Metrics> {
        let registry =
            Registry::new_custom(Some("outbox_relay".into()), None).expect("a valid prefix");
        let counter = |name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &["topic"]).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("registered once");
            h
        };
        let published = counter(
            "published_total",
            "Messages the broker acknowledged and the outbox completed.",
        );
        let failed = counter(
            "failed_total",
            "Failed delivery attempts reported with outbox.fail (retried later).",
        );
        let dead = counter("dead_lettered_total", "Messages that became dead letters.");
        let batch_seconds = histogram(
            "batch_seconds",
            "Time from claim to settled, per batch.",
            prometheus::exponential_buckets(0.001, 2.0, 16).expect("valid buckets"),
        );
        let lag_seconds = histogram(
            "end_to_end_lag_seconds",
            "Time from enqueue to the broker's acknowledgement, per message.",
            prometheus::exponential_buckets(0.001, 2.0, 20).expect("valid buckets"),
        );
        let backlog = IntGaugeVec::new(
            Opts::new(
                "backlog",
                "Messages per topic and state, from outbox.stats().",
            ),
            &["topic", "state"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(backlog.clone()))
            .expect("registered once");
        let oldest_ready_seconds = GaugeVec::new(
            Opts::new(
                "oldest_ready_seconds",
                "Age of the oldest ready message per topic (the lag), from outbox.stats().",
            ),
            &["topic"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(oldest_ready_seconds.clone()))
            .expect("registered once");
        let up = Gauge::new(
            "database_up",
            "1 while the last outbox.stats() poll succeeded.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(up.clone()))
            .expect("registered once");
        Arc::new(Metrics {
            registry,
            published,
            failed,
            dead,
            batch_seconds,
            lag_seconds,
            backlog,
            oldest_ready_seconds,
            up,
            ready: AtomicBool::new(false),
        })
    }

    pub(super) fn render(&self) -> String {
        let mut out = Vec::new();
        // Fails only on malformed metric families, and ours have fixed names
        // and labels; a scrape must not take the relay down regardless.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Where every event is reported, once: it updates [`RelayStats`] and the
/// [`Metrics`] together, so the two cannot disagree about what was counted.
pub(crate) struct Counters {
    pub stats: Arc<RelayStats>,
    pub metrics: Arc<Metrics>,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    /// `acked` were acknowledged by the broker and `completed` of them
    /// completed (fewer: some leases had expired and been taken over).
    pub fn completed(&self, acked: &[&Message], completed: u64) {
        add(&self.stats.published, completed);
        let now = chrono::Utc::now();
        for m in acked {
            self.metrics.published.with_label_values(&[&m.topic]).inc();
            let lag = (now - m.created_at).to_std().unwrap_or_default();
            self.metrics.lag_seconds.observe(lag.as_secs_f64());
        }
    }

    /// What `outbox.fail()` decided for one message of `topic`.
    pub fn failed(&self, topic: &str, outcome: &FailOutcome) {
        let (stat, metric) = match outcome {
            FailOutcome::Dead => (&self.stats.dead, &self.metrics.dead),
            FailOutcome::Retrying { .. } => (&self.stats.failed, &self.metrics.failed),
            FailOutcome::Stale => return,
        };
        add(stat, 1);
        metric.with_label_values(&[topic]).inc();
    }

    /// `n` messages handed back unspent.
    pub fn released(&self, n: u64) {
        add(&self.stats.released, n);
    }

    /// A doorbell ring woke the relay.
    pub fn rung(&self) {
        add(&self.stats.wakeups, 1);
    }

    /// A batch went from claimed to settled.
    pub fn batch(&self, started: std::time::Instant) {
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.batch_seconds.observe(seconds);
    }
}
