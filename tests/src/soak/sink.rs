//! The soak's broker: a webhook endpoint (axum) that `outbox-relay
//! --publisher http` POSTs every message to, and that records each delivery
//! in arrival order.
//!
//! Why the HTTP publisher rather than stdout: the sink decides each answer,
//! so the soak also drives the relay's failure paths — a seeded ~1% of
//! deliveries get `503` with `Retry-After: 1` (`outbox.fail`, backoff, the key
//! held back meanwhile) and poison messages get `422` (a permanent failure:
//! a dead letter) — and a delivery is recorded only when its whole request
//! arrived, where a relay killed halfway through writing to a stdout pipe
//! leaves a torn line. All relays share one sink, so arrival order across
//! relays (what per-key order is about) is one sequence.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// One accepted (2xx) delivery, in arrival order.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The outbox id.
    pub id: i64,
    /// The producer's unique id of the message (from the payload).
    pub uid: String,
    pub key: Option<String>,
    /// `attempt` as claimed: 1 for the first claim.
    pub attempt: i64,
    /// Which relay slot sent it (the `soak-relay` header).
    pub relay: i64,
}

/// What the sink saw, shared with its handler.
#[derive(Debug, Default)]
pub struct SinkLog {
    deliveries: Mutex<Vec<Delivery>>,
    /// Poison messages answered 422.
    pub rejected: AtomicU64,
    /// Deliveries answered 503 by the seeded failure injection.
    pub unavailable: AtomicU64,
    /// Requests whose body was not a message (must stay 0).
    pub malformed: AtomicU64,
}

impl SinkLog {
    /// Accepted deliveries so far, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.deliveries).clone()
    }

    /// How many deliveries were accepted so far.
    pub fn accepted(&self) -> usize {
        lock(&self.deliveries).len()
    }
}

fn lock(m: &Mutex<Vec<Delivery>>) -> std::sync::MutexGuard<'_, Vec<Delivery>> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone)]
struct SinkState {
    log: Arc<SinkLog>,
    seed: u64,
    unavailable_per_mille: u64,
}

/// A running sink; stops when dropped.
pub struct Sink {
    /// Where relays POST: `http://127.0.0.1:<port>/`.
    pub url: String,
    pub log: Arc<SinkLog>,
    stop: CancellationToken,
}

impl Sink {
    /// Starts on an ephemeral port of 127.0.0.1. `unavailable_per_mille` of
    /// deliveries (chosen by a hash of seed, id and attempt, so a retry is
    /// decided afresh) are answered 503.
    pub async fn start(seed: u64, unavailable_per_mille: u64) -> std::io::Result<Sink> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr: SocketAddr = listener.local_addr()?;
        let log: Arc<SinkLog> = Arc::default();
        let state = SinkState {
            log: log.clone(),
            seed,
            unavailable_per_mille,
        };
        let app = Router::new().route("/", post(receive)).with_state(state);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await;
            if let Err(e) = served {
                eprintln!("soak sink stopped: {e}");
            }
        });
        Ok(Sink {
            url: format!("http://{addr}/"),
            log,
            stop,
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn receive(State(state): State<SinkState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(delivery) = parse(&headers, &body) else {
        state.log.malformed.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::BAD_REQUEST, "not an outbox message").into_response();
    };
    let message: Value = serde_json::from_slice(&body).unwrap_or_default();
    if message["payload"]["poison"].as_bool() == Some(true) {
        state.log.rejected.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::UNPROCESSABLE_ENTITY, "poison message").into_response();
    }
    if mix(state.seed, delivery.id, delivery.attempt) % 1000 < state.unavailable_per_mille {
        state.log.unavailable.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "1")],
            "injected 503",
        )
            .into_response();
    }
    lock(&state.log.deliveries).push(delivery);
    StatusCode::NO_CONTENT.into_response()
}

fn parse(headers: &HeaderMap, body: &[u8]) -> Option<Delivery> {
    let m: Value = serde_json::from_slice(body).ok()?;
    Some(Delivery {
        id: m["id"].as_i64()?,
        uid: m["payload"]["u"].as_str()?.to_owned(),
        key: m["key"].as_str().map(str::to_owned),
        attempt: m["attempt"].as_i64()?,
        relay: headers
            .get("soak-relay")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1),
    })
}

/// A stable 64-bit mix (splitmix64) of the three numbers.
fn mix(seed: u64, id: i64, attempt: i64) -> u64 {
    let mut z = seed ^ (id as u64).rotate_left(17) ^ (attempt as u64).rotate_left(41);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
