//! Connections: TLS as [`RelayConfig::tls`] says, session setup, and
//! retrying with capped, jittered exponential backoff while PostgreSQL is
//! away. Every connection the relay opens comes from here: the workers' and
//! the metrics poller's through [`super::session::Session`], the
//! doorbell's listening one directly.

use super::sql;
use super::RelayConfig;
use crate::{error_chain, Error};
use rand::Rng;
use std::time::Duration;
use tokio_postgres::{AsyncMessage, Client, Notification};
use tokio_util::sync::CancellationToken;

/// One connection attempt to `cfg.db` secured by `cfg.tls`, with the relay's
/// session settings: an empty search_path (every statement is
/// schema-qualified) and asynchronous commit (a lost acknowledgement of
/// complete/fail only means a redelivery). None behind a pooler
/// ([`RelayConfig::pooler`]): a session setting would stay on a server
/// connection that other clients get next, and would not be on the next one
/// this relay gets.
pub(crate) async fn connect_once(cfg: &RelayConfig) -> Result<Client, Error> {
    let (client, connection) = crate::connect(&cfg.db, &cfg.tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %error_chain(&e), "connection closed");
        }
    });
    if !cfg.pooler {
        client.query_one(sql::SESSION_SETUP, &[]).await?;
    }
    Ok(client)
}

/// Like [`connect_once`], but notifications arrive on the returned channel;
/// it closes when the connection does.
pub(crate) async fn connect_listening(
    cfg: &RelayConfig,
) -> Result<(Client, tokio::sync::mpsc::UnboundedReceiver<Notification>), Error> {
    let (client, mut connection) = crate::connect(&cfg.db, &cfg.tls).await?;
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
                    tracing::debug!(error = %error_chain(&e), "listening connection closed");
                    break;
                }
            }
        }
    });
    client.query_one(sql::SESSION_SETUP, &[]).await?;
    let schema = cfg.statements()?.schema;
    let channel: String = client
        .query_one(&sql::channel(schema), &[])
        .await?
        .try_get(0)?;
    client
        .batch_execute(&format!("LISTEN {}", quote_ident(&channel)))
        .await?;
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
                // The whole chain: tokio-postgres' own text is only "db
                // error" or "error performing TLS handshake".
                tracing::warn!(error = %error_chain(&e), retry_in = ?jittered, "{what} failed; retrying");
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

/// `"name"`, with embedded quotes doubled: the channel comes from the server.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
