//! `/metrics` (Prometheus), `/healthz` (live) and `/readyz` (database
//! reachable, extension present) on `RelayConfig::metrics_addr`, and the
//! poller that keeps the backlog gauges fresh.

use super::metrics::Metrics;
use super::session::{Patience, Session};
use super::Shared;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Serve the endpoints and keep the backlog gauges and readiness fresh.
pub(super) async fn run<P>(shared: Arc<Shared<P>>, addr: SocketAddr) {
    let metrics = shared.counters.metrics.clone();
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
    let metrics = &shared.counters.metrics;
    let mut session = Session::new(cfg.clone(), "metrics poller");
    loop {
        let ok = tokio::select! {
            ok = poll_once(&mut session, metrics, cfg.poll_interval) => ok,
            () = shared.shutdown.cancelled() => return,
        };
        metrics.ready.store(ok, Ordering::Relaxed);
        metrics.up.set(if ok { 1.0 } else { 0.0 });
        tokio::select! {
            () = tokio::time::sleep(cfg.poll_interval) => {}
            () = shared.shutdown.cancelled() => return,
        }
    }
}

/// One poll; false if it failed. The session is a worker's kind, given one
/// poll interval to come back: a poll that gets no connection in that time
/// says not ready.
async fn poll_once(session: &mut Session, metrics: &Metrics, within: Duration) -> bool {
    let patience = Patience::Until(tokio::time::Instant::now() + within);
    let Some(c) = session.connected(patience).await.ok().flatten() else {
        return false;
    };
    match c.stats().await {
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
            session.lost("outbox.stats()", &e);
            false
        }
    }
}
