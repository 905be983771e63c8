//! Connections: session setup, and reconnecting with capped, jittered
//! exponential backoff while PostgreSQL is away.

use crate::store::Prepared;
use crate::{sql, Error};
use rand::Rng;
use std::time::Duration;
use tokio_postgres::{AsyncMessage, Client, NoTls, Notification};
use tokio_util::sync::CancellationToken;

/// One connection attempt, with the relay's session settings: an empty
/// search_path (every statement is schema-qualified) and asynchronous commit
/// (a lost acknowledgement of complete/fail only means a redelivery).
pub(crate) async fn connect_once(db: &tokio_postgres::Config) -> Result<Client, Error> {
    let (client, connection) = db.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "connection closed");
        }
    });
    client.query_one(sql::SESSION_SETUP, &[]).await?;
    Ok(client)
}

/// Like [`connect_once`], but notifications arrive on the returned channel;
/// it closes when the connection does.
pub(crate) async fn connect_listening(
    db: &tokio_postgres::Config,
) -> Result<(Client, tokio::sync::mpsc::UnboundedReceiver<Notification>), Error> {
    let (client, mut connection) = db.connect(NoTls).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "listening connection closed");
                    break;
                }
            }
        }
    });
    client.query_one(sql::SESSION_SETUP, &[]).await?;
    client.batch_execute(sql::LISTEN).await?;
    Ok((client, rx))
}

/// Retry `attempt` until it succeeds, a non-transient error occurs, or
/// `shutdown` is cancelled (`Ok(None)`).
pub(crate) async fn with_backoff<T, F, Fut>(
    what: &str,
    max: Duration,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Result<Option<T>, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        if shutdown.is_cancelled() {
            return Ok(None);
        }
        match attempt().await {
            Ok(value) => return Ok(Some(value)),
            Err(e) if e.is_transient() => {
                let jittered = delay.mul_f64(rand::thread_rng().gen_range(0.5..1.0));
                tracing::warn!(error = %e, retry_in = ?jittered, "{what} failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(jittered) => {}
                    () = shutdown.cancelled() => return Ok(None),
                }
                delay = (delay * 2).min(max);
            }
            Err(e) => return Err(e),
        }
    }
}

/// A worker's connection with the relay's statements prepared on it.
pub(crate) struct Conn {
    pub client: Client,
    pub prepared: Prepared,
}

impl Conn {
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// [`connect_once`], then prepare the relay's statements on it.
pub(crate) async fn connect_prepared(db: &tokio_postgres::Config) -> Result<Conn, Error> {
    let client = connect_once(db).await?;
    let prepared = Prepared::new(&client).await?;
    Ok(Conn { client, prepared })
}
