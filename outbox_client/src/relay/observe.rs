//! Observability: Prometheus metrics, and `/healthz` (live) and `/readyz`
//! (database reachable, extension present) on `RelayConfig::metrics_addr`.

use super::{connect, Shared};
use crate::{Message, Store};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The relay's metrics, all prefixed `outbox_relay_`.
pub struct Metrics {
    registry: Registry,
    published: IntCounterVec,
    failed: IntCounterVec,
    dead: IntCounterVec,
    batch_seconds: Histogram,
    lag_seconds: Histogram,
    backlog: IntGaugeVec,
    oldest_ready_seconds: GaugeVec,
    up: Gauge,
    ready: AtomicBool,
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

    pub(crate) fn acked(&self, messages: &[&Message]) {
        let now = chrono::Utc::now();
        for m in messages {
            self.published.with_label_values(&[&m.topic]).inc();
            let lag = (now - m.created_at).to_std().unwrap_or_default();
            self.lag_seconds.observe(lag.as_secs_f64());
        }
    }

    pub(crate) fn failed(&self, topic: &str, dead: bool) {
        if dead { &self.dead } else { &self.failed }
            .with_label_values(&[topic])
            .inc();
    }

    pub(crate) fn batch(&self, seconds: f64) {
        self.batch_seconds.observe(seconds);
    }

    fn render(&self) -> String {
        let mut out = Vec::new();
        // Fails only on malformed metric families, and ours have fixed names
        // and labels; a scrape must not take the relay down regardless.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Serve the endpoints and keep the backlog gauges and readiness fresh.
pub(crate) async fn run<P>(shared: Arc<Shared<P>>, addr: SocketAddr) {
    let metrics = shared.metrics.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move { m.render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "database unreachable or outbox extension missing",
                    )
                }
            }),
        )
        .with_state(metrics.clone());
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot serve metrics");
            return;
        }
    };
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    let shutdown = shared.shutdown.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await });
    tokio::join!(
        async {
            server.await.ok();
        },
        poll_backlog(&shared)
    );
}

/// Every poll interval: outbox.stats() into the backlog gauges; readiness
/// follows whether that worked.
async fn poll_backlog<P>(shared: &Shared<P>) {
    let cfg = &shared.config;
    let metrics = &shared.metrics;
    let mut client = None;
    loop {
        if client
            .as_ref()
            .is_none_or(|c: &tokio_postgres::Client| c.is_closed())
        {
            client = connect::connect_once(cfg).await.ok();
        }
        let ok = match &client {
            Some(c) => match Store.stats(c).await {
                Ok(stats) => {
                    metrics.backlog.reset();
                    metrics.oldest_ready_seconds.reset();
                    for s in stats {
                        for (state, n) in [
                            ("ready", s.ready),
                            ("blocked", s.blocked),
                            ("scheduled", s.scheduled),
                            ("leased", s.leased),
                            ("dead", s.dead),
                        ] {
                            metrics.backlog.with_label_values(&[&s.topic, state]).set(n);
                        }
                        metrics
                            .oldest_ready_seconds
                            .with_label_values(&[&s.topic])
                            .set(s.oldest_ready_age_seconds.unwrap_or(0.0));
                    }
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox.stats() failed");
                    false
                }
            },
            None => false,
        };
        metrics.ready.store(ok, Ordering::Relaxed);
        metrics.up.set(if ok { 1.0 } else { 0.0 });
        tokio::select! {
            () = tokio::time::sleep(cfg.poll_interval) => {}
            () = shared.shutdown.cancelled() => return,
        }
    }
}
