//! Redis Streams: `XADD` each message to the stream `prefix + topic`, a
//! batch's commands pipelined on one connection, and wait for the entry ids.
//!
//! Each entry has the fields `id` (the outbox id), `topic`, `key` (when the
//! message has one), `attempt`, `headers` (the message's headers as a JSON
//! object, when it has some) and `payload` (the bytes `jsonb` printed,
//! unparsed). Entries of one stream are in the order they were added, and
//! the relay never has two messages of one key in flight, so a key's
//! messages are in the outbox's per-key order in their stream.
//!
//! Delivery is at least once: a relay that dies after `XADD` and before it
//! completes the message adds the entry again on the retry (with `attempt`
//! one higher), and so does a pipeline cut off by a lost connection after the
//! server ran some of it. Redis has no per-entry deduplication, so consumers
//! deduplicate on the `id` field: `SET outbox:<id> 1 NX EX 86400` before
//! acting (a nil reply means it was seen), or the id in a unique index of
//! their own table. Not by keeping the highest id seen per key: a key's
//! order is commit order, not id order (docs/state-machine.md).
//!
//! An `XADD` reply is only as durable as the server's persistence: with
//! `appendonly no`, or `appendfsync everysec` (the default when on), a crash
//! can lose entries the outbox already deleted (see README).
//!
//! With a CloudEvents envelope the `payload` field is the event in the JSON
//! event format (structured mode: Redis has no CloudEvents binding, so no
//! binary mode) and a field `content-type` says so
//! (`application/cloudevents+json; charset=UTF-8`); the other fields stay.

use super::cloudevents::{Binding, CloudEvents, STRUCTURED_CONTENT_TYPE};
use super::{Delivery, Publisher};
use crate::{Error, Message};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, RedisError, RedisResult, Value};
use std::time::Duration;

/// Settings of [`RedisPublisher`]. Each field's doc ends with its default.
#[derive(Clone)]
pub struct RedisConfig {
    /// Server URL: `redis://[user:password@]host:port[/db]`, `rediss://` for
    /// TLS (verified against the system roots), or `redis+unix:///path`.
    /// Default: `redis://127.0.0.1:6379`.
    pub url: String,
    /// Prepended to the topic to make the stream key (`prefix` + `topic`).
    /// Default: empty.
    pub stream_prefix: String,
    /// Trim each stream to about this many entries (`MAXLEN ~ N`: Redis
    /// trims whole nodes, so a stream may keep somewhat more). Consumers that
    /// fall further behind lose entries. Default: `None` (never trimmed).
    pub maxlen: Option<u64>,
    /// How long connecting, and one batch's replies, may take. Default: 5 s.
    pub timeout: Duration,
    /// The envelope: the outbox's own (documented on the publisher) or a
    /// CloudEvents event ([`super::cloudevents`]). Default: the outbox's.
    pub envelope: super::Envelope,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            stream_prefix: String::new(),
            maxlen: None,
            timeout: Duration::from_secs(5),
            envelope: super::Envelope::Outbox,
        }
    }
}

// By hand: the URL may hold a password.
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redacted(&self.url))
            .field("stream_prefix", &self.stream_prefix)
            .field("maxlen", &self.maxlen)
            .field("timeout", &self.timeout)
            .field("envelope", &self.envelope)
            .finish()
    }
}

/// Publishes with `XADD <prefix><topic> [MAXLEN ~ N] * id .. topic .. key ..
/// attempt .. headers .. payload ..` (the module docs describe the fields
/// and how consumers deduplicate). A message counts as delivered once the
/// server answered with the entry's id.
///
/// What is retried and what is dead-lettered, by the server's error code:
///
/// - Retryable: a lost connection, a refused one, no reply within the
///   timeout: the server or the network, not the message. So are the codes
///   of a server that cannot write *now*: `LOADING` (reading its dataset
///   after a restart), `BUSY` (a script is running), `TRYAGAIN`,
///   `CLUSTERDOWN`, `MOVED`/`ASK` (a cluster reshaping), `MASTERDOWN` and
///   `READONLY` (a replica, e.g. during failover), `OOM` (maxmemory reached;
///   consumers trimming frees it), `MISCONF` (it cannot persist), `NOAUTH`,
///   `NOPERM` (ACLs an operator can fix), `ERR unknown command` (a server
///   without streams, before 5.0), and any code not listed below: a server
///   state is likelier than a fault of this one message, and the outbox's
///   attempt limit dead-letters the message if it never clears.
/// - Permanent: `WRONGTYPE` (the stream key holds another type, so this
///   topic's `XADD` fails until someone deletes that key by hand) and other
///   `ERR` replies (the server refused this command with these arguments,
///   e.g. a stream that used up its ids): sending the same `XADD` again gets
///   the same answer. The error names the stream and carries the server's
///   text. A bad `MAXLEN` is never sent: [`RedisPublisher::connect`] rejects
///   it.
#[derive(Clone)]
pub struct RedisPublisher {
    connection: ConnectionManager,
    prefix: String,
    maxlen: Option<u64>,
    timeout: Duration,
    /// The CloudEvents envelope, if configured (always structured).
    events: Option<CloudEvents>,
}

impl std::fmt::Debug for RedisPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPublisher")
            .field("prefix", &self.prefix)
            .field("maxlen", &self.maxlen)
            .finish_non_exhaustive()
    }
}

impl RedisPublisher {
    /// Connect to the server; fails with [`Error::Broker`] if it cannot be
    /// reached (or refuses the credentials) within the timeout, and with
    /// [`Error::Config`] on a URL or `maxlen` it cannot use. After that the
    /// connection is re-established by itself when lost.
    pub async fn connect(config: RedisConfig) -> Result<Self, Error> {
        let shown = redacted(&config.url);
        // Structured is the only mode there: an error for binary.
        let events = config
            .envelope
            .for_binding(Binding::Redis)?
            .map(|(events, _)| events);
        if let Some(maxlen) = config.maxlen {
            // Redis reads MAXLEN as a signed 64-bit count; 0 would delete
            // every entry as it is added.
            if maxlen == 0 || i64::try_from(maxlen).is_err() {
                return Err(Error::Config {
                    field: "redis maxlen",
                    reason: format!("{maxlen} is not between 1 and {}", i64::MAX),
                });
            }
        }
        let client = redis::Client::open(config.url.as_str()).map_err(|e| Error::Config {
            field: "redis url",
            reason: format!("{shown}: {e}"),
        })?;
        if config.url.starts_with("rediss") {
            // redis-rs builds its TLS config with the process-wide rustls
            // provider; make it the ring one the rest of the relay uses,
            // so a second provider compiled in cannot leave it undecided.
            // An error only says one is installed already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let broker = |message: String| Error::Broker {
            broker: "redis",
            message,
        };
        let no_answer = || broker(format!("{shown}: no answer within {:?}", config.timeout));
        // One plain attempt first: the manager retries a refused connection
        // with backoff until the timeout, which would hide "Connection
        // refused" or "invalid password" behind "no answer".
        let probe = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout));
        tokio::time::timeout(config.timeout, async {
            let mut connection = client
                .get_multiplexed_async_connection_with_config(&probe)
                .await?;
            redis::cmd("PING").query_async::<()>(&mut connection).await
        })
        .await
        .map_err(|_| no_answer())?
        .map_err(|e| broker(format!("{shown}: {}", describe(&e))))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            // Reconnect attempts back off from 100 ms; capping the wait
            // at 1 s gets a restarted server used within about a second.
            .set_max_delay(Duration::from_secs(1));
        let connection = tokio::time::timeout(
            config.timeout,
            ConnectionManager::new_with_config(client, manager_config),
        )
        .await
        .map_err(|_| no_answer())?
        .map_err(|e| broker(format!("{shown}: {}", describe(&e))))?;
        Ok(RedisPublisher {
            connection,
            prefix: config.stream_prefix,
            maxlen: config.maxlen,
            timeout: config.timeout,
            events,
        })
    }

    /// The message's stream key.
    fn stream(&self, message: &Message) -> String {
        format!("{}{}", self.prefix, message.topic)
    }

    /// The `XADD` of one message.
    fn xadd(&self, message: &Message) -> Cmd {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.stream(message));
        if let Some(maxlen) = self.maxlen {
            cmd.arg("MAXLEN").arg("~").arg(maxlen);
        }
        cmd.arg("*")
            .arg("id")
            .arg(message.id)
            .arg("topic")
            .arg(&message.topic);
        if let Some(key) = &message.key {
            cmd.arg("key").arg(key);
        }
        cmd.arg("attempt").arg(message.attempt);
        if let Some(headers) = &message.headers {
            // Compact JSON; a claimed row's headers are an object of strings.
            cmd.arg("headers").arg(headers.to_string());
        }
        match &self.events {
            None => cmd.arg("payload").arg(message.payload.get().as_bytes()),
            Some(events) => cmd
                .arg("content-type")
                .arg(STRUCTURED_CONTENT_TYPE)
                .arg("payload")
                .arg(events.structured(message)),
        };
        cmd
    }
}

impl Publisher for RedisPublisher {
    fn system(&self) -> &'static str {
        "redis"
    }

    async fn publish(&self, batch: &[Message]) -> Vec<Delivery> {
        if batch.is_empty() {
            return Vec::new();
        }
        let mut pipe = redis::pipe();
        // One reply per XADD, errors included, instead of failing the batch
        // on the first WRONGTYPE.
        pipe.ignore_errors();
        for message in batch {
            pipe.add_command(self.xadd(message));
        }
        let mut connection = self.connection.clone();
        let replies = tokio::time::timeout(
            self.timeout,
            pipe.query_async::<Vec<RedisResult<Value>>>(&mut connection),
        )
        .await;
        let whole_batch = |error: String| {
            batch
                .iter()
                .map(|_| Delivery::Retryable {
                    error: error.clone(),
                    retry_after: None,
                })
                .collect()
        };
        let replies = match replies {
            Err(_) => return whole_batch(format!("Redis: no reply within {:?}", self.timeout)),
            Ok(Err(e)) => return whole_batch(format!("Redis: {}", describe(&e))),
            Ok(Ok(replies)) => replies,
        };
        let mut replies = replies.into_iter();
        batch
            .iter()
            .map(|message| match replies.next() {
                Some(Ok(_entry_id)) => Delivery::Acked,
                Some(Err(e)) => classify(&self.stream(message), &e),
                // Cannot happen (one reply per command); not worth a panic.
                None => Delivery::Retryable {
                    error: "Redis: no reply to this XADD".into(),
                    retry_after: None,
                },
            })
            .collect()
    }
}

/// What one failed `XADD` to `stream` means (see [`RedisPublisher`]).
fn classify(stream: &str, e: &RedisError) -> Delivery {
    let error = format!("Redis XADD {stream}: {}", describe(e));
    let permanent = match e.code() {
        Some("WRONGTYPE") => true,
        Some("ERR") => !e
            .detail()
            .is_some_and(|d| d.to_ascii_lowercase().starts_with("unknown command")),
        // Other codes are server states; no code is the client or the
        // connection (I/O, timeout, parse).
        _ => false,
    };
    if permanent {
        Delivery::Permanent { error }
    } else {
        Delivery::Retryable {
            error,
            retry_after: None,
        }
    }
}

/// The server's own text (`WRONGTYPE Operation against a key ...`) for a
/// server error, else the client's description.
fn describe(e: &RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_owned(),
        _ => e.to_string(),
    }
}

/// The URL without its password, for errors and logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error a server reply line (`-CODE text`) turns into.
    fn server(reply: &str) -> RedisError {
        match redis::parse_redis_value(format!("-{reply}\r\n").as_bytes()) {
            Ok(Value::ServerError(e)) => e.into(),
            other => panic!("not a server error: {other:?}"),
        }
    }

    #[test]
    fn server_states_are_retried_and_refusals_of_the_message_are_not() {
        let retried = [
            "LOADING Redis is loading the dataset in memory",
            "BUSY Redis is busy running a script",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "MASTERDOWN Link with MASTER is down",
            "READONLY You can't write against a read only replica.",
            "OOM command not allowed when used memory > 'maxmemory'.",
            "NOPERM this user has no permissions to access the key",
            "ERR unknown command 'XADD', with args beginning with: ",
        ];
        let refused = [
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "ERR The stream has exhausted the last possible ID",
        ];
        for reply in retried.iter().chain(&refused) {
            let want = format!("Redis XADD orders: {reply}");
            match classify("orders", &server(reply)) {
                Delivery::Permanent { error } if refused.contains(reply) => {
                    assert_eq!(error, want)
                }
                Delivery::Retryable { error, .. } if retried.contains(reply) => {
                    assert_eq!(error, want)
                }
                other => panic!("{reply}: {other:?}"),
            }
        }
    }

    #[test]
    fn connection_failures_are_retried() {
        for kind in [
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::TimedOut,
        ] {
            let e = RedisError::from(std::io::Error::from(kind));
            assert!(
                matches!(classify("s", &e), Delivery::Retryable { .. }),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redacted("redis://app:s3cret@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
