//! Producers: each on its own connection through the proxy, one message per
//! transaction — lock the key's row, enqueue, write the ledger row, then
//! COMMIT or (by a seeded choice) ROLLBACK.
//!
//! A transaction that failed before COMMIT was sent certainly rolled back. One
//! whose COMMIT got no answer (the connection was cut, stalled or PostgreSQL
//! crashed) may or may not have committed: the producer does not guess. It
//! terminates its old backend from a direct connection, waits until that
//! backend is gone (so the outcome is final: a COMMIT still held in the proxy
//! can no longer arrive), and looks its uid up in the ledger. Messages that
//! did not commit are retried with the same uid, up to [`MAX_TRIES`] times.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls, Statement};

/// Tries per message (one transaction each) before it is given up.
pub const MAX_TRIES: u32 = 5;
/// Longest wait for any one statement; a stall lasts at most a few seconds.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long after its deadline a producer may still spend reconnecting and
/// resolving, so that it always ends.
const GRACE: Duration = Duration::from_secs(90);

const LOCK_KEY: &str = "UPDATE soak_keys SET version = version + 1 WHERE key = $1";
const ENQUEUE: &str = "SELECT outbox.enqueue('soak.events', $1::jsonb, key => $2)";
const LEDGER: &str = "INSERT INTO soak_ledger (uid, producer, seq, key, outbox_id, poison) \
                      VALUES ($1, $2, $3, $4, $5, $6)";
const WHO_AM_I: &str =
    "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()";
const TERMINATE: &str = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE pid = $1 AND backend_start = $2";
const STILL_THERE: &str =
    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2";
const LOOKUP: &str = "SELECT outbox_id FROM soak_ledger WHERE uid = $1";

/// What one producer does.
#[derive(Debug, Clone)]
pub struct ProducerSpec {
    pub index: u32,
    pub seed: u64,
    /// Messages to produce (each one enqueue in its own transaction).
    pub messages: u64,
    /// Keys `k0` … `k<keys-1>`, shared by all producers.
    pub keys: u32,
    pub rollback_probability: f64,
    pub poison_probability: f64,
    /// Time between the starts of two transactions (pacing).
    pub period: Duration,
    /// Produce nothing new after this.
    pub deadline: Instant,
    /// Through the proxy.
    pub proxied: tokio_postgres::Config,
    /// Straight to PostgreSQL's unix socket, for resolving ambiguous commits.
    pub direct: tokio_postgres::Config,
}

/// What one producer did and believes.
#[derive(Debug, Default)]
pub struct ProducerReport {
    /// Messages it started (first tries).
    pub messages: u64,
    /// Transactions begun (tries).
    pub transactions: u64,
    /// (uid, outbox id) of every message it believes committed.
    pub committed: Vec<(String, i64)>,
    /// uids it rolled back on purpose (and did not retry).
    pub rolled_back: Vec<String>,
    /// Transactions that failed before COMMIT was sent (a fault).
    pub aborted: u64,
    /// COMMITs without an answer, resolved from the ledger.
    pub ambiguous: u64,
    pub ambiguous_committed: u64,
    pub ambiguous_not_committed: u64,
    /// Ambiguous COMMITs it could not resolve in time (must be 0).
    pub unresolved: Vec<String>,
    /// Messages given up after [`MAX_TRIES`] tries, or at the deadline.
    pub given_up: u64,
    pub connects: u64,
}

struct Live {
    client: Client,
    pid: i32,
    started: chrono::DateTime<chrono::Utc>,
    lock_key: Statement,
    enqueue: Statement,
    ledger: Statement,
}

enum TxEnd {
    Committed(i64),
    RolledBack,
    Aborted,
    Ambiguous,
}

struct Message {
    uid: String,
    seq: i32,
    key: String,
    poison: bool,
    rollback: bool,
}

/// Runs one producer to the end of its messages or its deadline.
pub async fn run(spec: ProducerSpec) -> ProducerReport {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ (0x5eed_0000 + u64::from(spec.index)));
    let mut report = ProducerReport::default();
    let mut live: Option<Live> = None;
    let mut control: Option<Client> = None;
    let start = Instant::now();
    for n in 0..spec.messages {
        let due = start + spec.period.mul_f64(n as f64);
        if due >= spec.deadline {
            break;
        }
        tokio::time::sleep_until(due).await;
        let message = Message {
            uid: format!("p{}-{n}", spec.index),
            seq: n as i32,
            key: format!("k{}", rng.gen_range(0..spec.keys)),
            poison: rng.gen_bool(spec.poison_probability),
            rollback: rng.gen_bool(spec.rollback_probability),
        };
        report.messages += 1;
        let mut done = false;
        for _try in 0..MAX_TRIES {
            if live.as_ref().is_none_or(|l| l.client.is_closed()) {
                live = connect(&spec, &mut report).await;
            }
            let Some(l) = live.as_ref() else {
                break; // could not connect before the end
            };
            report.transactions += 1;
            match transact(&spec, l, &message).await {
                TxEnd::Committed(id) => {
                    report.committed.push((message.uid.clone(), id));
                    done = true;
                }
                TxEnd::RolledBack => {
                    report.rolled_back.push(message.uid.clone());
                    done = true;
                }
                TxEnd::Aborted => {
                    report.aborted += 1;
                    live = None;
                }
                TxEnd::Ambiguous => {
                    report.ambiguous += 1;
                    let Some(old) = live.take() else { break };
                    match resolve(&spec, &mut control, &old, &message.uid).await {
                        Some(Some(id)) => {
                            report.ambiguous_committed += 1;
                            report.committed.push((message.uid.clone(), id));
                            done = true;
                        }
                        Some(None) => report.ambiguous_not_committed += 1,
                        None => {
                            report.unresolved.push(message.uid.clone());
                            done = true; // never retry what may have committed
                        }
                    }
                }
            }
            if done {
                break;
            }
        }
        if !done {
            report.given_up += 1;
        }
    }
    report
}

async fn transact(spec: &ProducerSpec, l: &Live, m: &Message) -> TxEnd {
    let payload = if m.poison {
        json!({ "u": m.uid, "p": spec.index, "n": m.seq, "poison": true })
    } else {
        json!({ "u": m.uid, "p": spec.index, "n": m.seq })
    };
    let c = &l.client;
    let before_commit = async {
        c.batch_execute("BEGIN").await?;
        c.execute(&l.lock_key, &[&m.key]).await?;
        let id: i64 = c.query_one(&l.enqueue, &[&payload, &m.key]).await?.get(0);
        c.execute(
            &l.ledger,
            &[&m.uid, &(spec.index as i32), &m.seq, &m.key, &id, &m.poison],
        )
        .await?;
        Ok::<i64, tokio_postgres::Error>(id)
    };
    let id = match tokio::time::timeout(STATEMENT_TIMEOUT, before_commit).await {
        Ok(Ok(id)) => id,
        _ => return TxEnd::Aborted,
    };
    if m.rollback {
        // Failed or not, a ROLLBACK leaves nothing committed.
        let _ = tokio::time::timeout(STATEMENT_TIMEOUT, c.batch_execute("ROLLBACK")).await;
        return TxEnd::RolledBack;
    }
    match tokio::time::timeout(STATEMENT_TIMEOUT, c.batch_execute("COMMIT")).await {
        Ok(Ok(())) => TxEnd::Committed(id),
        // Any error at COMMIT, even a server's FATAL, may have come after the
        // commit record: only the ledger knows.
        _ => TxEnd::Ambiguous,
    }
}

/// Connects through the proxy, retrying until the deadline (plus grace).
async fn connect(spec: &ProducerSpec, report: &mut ProducerReport) -> Option<Live> {
    let give_up = spec.deadline + GRACE;
    let mut delay = Duration::from_millis(50);
    while Instant::now() < give_up {
        let attempt = async {
            let (client, connection) = spec.proxied.connect(NoTls).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let row = client.query_one(WHO_AM_I, &[]).await?;
            Ok::<Live, tokio_postgres::Error>(Live {
                pid: row.get(0),
                started: row.get(1),
                lock_key: client.prepare(LOCK_KEY).await?,
                enqueue: client.prepare(ENQUEUE).await?,
                ledger: client.prepare(LEDGER).await?,
                client,
            })
        };
        if let Ok(Ok(live)) = tokio::time::timeout(STATEMENT_TIMEOUT, attempt).await {
            report.connects += 1;
            return Some(live);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
    None
}

/// The ledger's answer for `uid` once `old`'s backend is surely gone:
/// `Some(Some(id))` committed, `Some(None)` not, `None` unresolved in time.
async fn resolve(
    spec: &ProducerSpec,
    control: &mut Option<Client>,
    old: &Live,
    uid: &str,
) -> Option<Option<i64>> {
    let give_up = Instant::now().max(spec.deadline) + GRACE;
    while Instant::now() < give_up {
        if control.as_ref().is_none_or(Client::is_closed) {
            *control = match spec.direct.connect(NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    Some(client)
                }
                Err(_) => None,
            };
        }
        if let Some(c) = control.as_ref() {
            let answer = async {
                c.execute(TERMINATE, &[&old.pid, &old.started]).await?;
                loop {
                    let n: i64 = c
                        .query_one(STILL_THERE, &[&old.pid, &old.started])
                        .await?
                        .get(0);
                    if n == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let row = c.query_opt(LOOKUP, &[&uid]).await?;
                Ok::<_, tokio_postgres::Error>(row.map(|r| r.get::<_, i64>(0)))
            };
            match tokio::time::timeout(STATEMENT_TIMEOUT, answer).await {
                Ok(Ok(found)) => return Some(found),
                _ => *control = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}
