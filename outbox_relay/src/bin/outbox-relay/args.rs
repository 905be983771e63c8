//! The command line: every flag, and how the flags given lay over the
//! library's defaults (`RelayConfig::new`, `HttpConfig::new`,
//! `NatsConfig::default`, `KafkaConfig::default`, `RedisConfig::default`,
//! `RabbitMqConfig::default`),
//! which are the only place a default is written. The connection flags are
//! `outbox_relay::cli::ConnectionArgs`, shared with the `outbox` CLI.

use clap::{ArgMatches, Command, CommandFactory, Parser, ValueEnum};
use outbox_relay::cli::ConnectionArgs;
use outbox_relay::{HttpConfig, KafkaConfig, NatsConfig, RabbitMqConfig, RedisConfig, RelayConfig};
use std::time::Duration;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PublisherKind {
    /// One JSON object per line on stdout (the embedded default).
    Stdout,
    /// POST each message as JSON to --http-url (Standard Webhooks signature).
    Http,
    /// Publish to NATS JetStream (subject = --nats-subject-prefix + topic).
    Nats,
    /// Produce to Kafka (topic = --kafka-topic-prefix + topic, key = outbox key).
    Kafka,
    /// XADD to Redis Streams (stream = --redis-stream-prefix + topic).
    Redis,
    /// Publish to RabbitMQ with confirms (exchange = --rabbitmq-exchange,
    /// routing key = --rabbitmq-routing-key-prefix + topic).
    Rabbitmq,
}

/// Relay messages from a PostgreSQL outbox (CREATE EXTENSION outbox) to a broker.
///
/// Every flag can also be set through the environment variable shown.
#[derive(Debug, Parser)]
#[command(name = "outbox-relay", version, about, long_about = None)]
pub struct Args {
    /// --database-url and the TLS flags, shared with the `outbox` CLI.
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// --envelope and the CloudEvents flags (envelope.rs).
    #[command(flatten)]
    pub envelope: crate::envelope::EnvelopeArgs,

    /// --otlp-endpoint and friends (telemetry.rs).
    #[command(flatten)]
    pub telemetry: crate::telemetry::TelemetryArgs,

    /// Where messages go.
    #[arg(long, env = "OUTBOX_PUBLISHER", value_enum, default_value = "stdout")]
    pub publisher: PublisherKind,

    /// Messages claimed per batch.
    #[arg(long, env = "OUTBOX_BATCH_SIZE")]
    pub batch_size: Option<i32>,

    /// Workers, each with its own connection and one batch in flight.
    #[arg(long, env = "OUTBOX_CONCURRENCY")]
    pub concurrency: Option<usize>,

    /// Lease per claim (e.g. 30s, 2m); extended while a slow publish runs.
    #[arg(long, env = "OUTBOX_LEASE", value_parser = humantime::parse_duration)]
    pub lease: Option<Duration>,

    /// Relay the named outbox NAME (made with outbox.create_outbox('NAME'),
    /// schema outbox_NAME) instead of the default outbox.
    #[arg(long, env = "OUTBOX_OUTBOX", value_name = "NAME")]
    pub outbox: Option<String>,

    /// Relay only this topic; repeat for several. Default: every topic.
    #[arg(long = "topic", env = "OUTBOX_TOPICS", value_delimiter = ',')]
    pub topics: Vec<String>,

    /// Longest sleep while idle; also how soon retries falling due are seen.
    #[arg(long, env = "OUTBOX_POLL_INTERVAL", value_parser = humantime::parse_duration)]
    pub poll_interval: Option<Duration>,

    /// How often to call outbox.cleanup() (dedup keys no message holds,
    /// history past outbox.retention); 0 leaves it to a scheduler of your
    /// own (pg_cron, cron).
    #[arg(long, env = "OUTBOX_CLEANUP_INTERVAL", value_parser = humantime::parse_duration)]
    pub cleanup_interval: Option<Duration>,

    /// Do not LISTEN for the doorbell, only poll.
    #[arg(long, env = "OUTBOX_POLL_ONLY")]
    pub poll_only: bool,

    /// --database-url is a transaction-mode pooler (PgBouncer pool_mode =
    /// transaction): poll only, send every statement unnamed (no prepared
    /// statements) and set nothing on the session.
    #[arg(long, env = "OUTBOX_POOLER")]
    pub pooler: bool,

    /// The name on this relay's leases. Default: <hostname>:<pid>:<random>.
    #[arg(long, env = "OUTBOX_OWNER")]
    pub owner: Option<String>,

    /// How long in-flight batches may take to finish after SIGINT/SIGTERM.
    #[arg(long, env = "OUTBOX_SHUTDOWN_GRACE", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Option<Duration>,

    /// Webhook URL for --publisher http.
    #[arg(long, env = "OUTBOX_HTTP_URL", required_if_eq("publisher", "http"))]
    pub http_url: Option<String>,

    /// Extra header for every webhook request, as "Name: value"; repeatable.
    #[arg(
        long = "http-header",
        env = "OUTBOX_HTTP_HEADERS",
        value_delimiter = '\n'
    )]
    pub http_headers: Vec<String>,

    /// Signing secret (raw, or whsec_<base64>); adds webhook-signature.
    #[arg(long, env = "OUTBOX_HTTP_SECRET", hide_env_values = true)]
    pub http_secret: Option<String>,

    /// Timeout of one webhook request.
    #[arg(long, env = "OUTBOX_HTTP_TIMEOUT", value_parser = humantime::parse_duration)]
    pub http_timeout: Option<Duration>,

    /// NATS server URL(s), comma-separated, for --publisher nats.
    #[arg(long, env = "OUTBOX_NATS_URL")]
    pub nats_url: Option<String>,

    /// Prepended to the topic to make the NATS subject.
    #[arg(long, env = "OUTBOX_NATS_SUBJECT_PREFIX")]
    pub nats_subject_prefix: Option<String>,

    /// How long to wait for a JetStream acknowledgement.
    #[arg(long, env = "OUTBOX_NATS_TIMEOUT", value_parser = humantime::parse_duration)]
    pub nats_timeout: Option<Duration>,

    /// Kafka bootstrap servers, for --publisher kafka.
    #[arg(long, env = "OUTBOX_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Prepended to the topic to make the Kafka topic.
    #[arg(long, env = "OUTBOX_KAFKA_TOPIC_PREFIX")]
    pub kafka_topic_prefix: Option<String>,

    /// How long a record may take to be acknowledged.
    #[arg(long, env = "OUTBOX_KAFKA_TIMEOUT", value_parser = humantime::parse_duration)]
    pub kafka_timeout: Option<Duration>,

    /// Extra librdkafka setting as key=value (e.g. security.protocol=SSL); repeatable.
    #[arg(
        long = "kafka-option",
        env = "OUTBOX_KAFKA_OPTIONS",
        value_delimiter = '\n'
    )]
    pub kafka_options: Vec<String>,

    /// Redis server URL for --publisher redis (rediss:// for TLS).
    #[arg(long, env = "OUTBOX_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prepended to the topic to make the Redis stream key.
    #[arg(long, env = "OUTBOX_REDIS_STREAM_PREFIX")]
    pub redis_stream_prefix: Option<String>,

    /// Trim each stream to about this many entries (XADD MAXLEN ~ N).
    /// Default: never trimmed.
    #[arg(long, env = "OUTBOX_REDIS_MAXLEN")]
    pub redis_maxlen: Option<u64>,

    /// How long connecting, and one batch's XADD replies, may take.
    #[arg(long, env = "OUTBOX_REDIS_TIMEOUT", value_parser = humantime::parse_duration)]
    pub redis_timeout: Option<Duration>,

    /// RabbitMQ URL for --publisher rabbitmq (amqps:// for TLS; the vhost
    /// URL-encoded, %2f for /).
    #[arg(long, env = "OUTBOX_RABBITMQ_URL", hide_env_values = true)]
    pub rabbitmq_url: Option<String>,

    /// The exchange to publish to; "" is the default exchange, which
    /// routes to the queue named by the routing key.
    #[arg(long, env = "OUTBOX_RABBITMQ_EXCHANGE")]
    pub rabbitmq_exchange: Option<String>,

    /// Prepended to the topic to make the routing key.
    #[arg(long, env = "OUTBOX_RABBITMQ_ROUTING_KEY_PREFIX")]
    pub rabbitmq_routing_key_prefix: Option<String>,

    /// How long connecting, and one batch's publisher confirms, may take.
    #[arg(long, env = "OUTBOX_RABBITMQ_TIMEOUT", value_parser = humantime::parse_duration)]
    pub rabbitmq_timeout: Option<Duration>,

    /// Serve Prometheus /metrics, /healthz and /readyz on this address
    /// (e.g. 127.0.0.1:9187). Default: not served.
    #[arg(long, env = "OUTBOX_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Log filter (tracing syntax, e.g. info, outbox_relay=debug).
    #[arg(long, env = "OUTBOX_LOG", default_value = "info,async_nats=warn")]
    pub log: String,
}

/// The relay's settings: the flags given, over [`RelayConfig::new`].
pub fn relay_config(args: &Args, matches: &ArgMatches) -> Result<RelayConfig, String> {
    let info = args.connection.conninfo(matches)?;
    let mut config = RelayConfig::new(info.db);
    config.tls = info.tls;
    set(&mut config.batch_size, args.batch_size);
    set(&mut config.concurrency, args.concurrency);
    set(&mut config.lease, args.lease);
    if !args.topics.is_empty() {
        config.topics = Some(args.topics.clone());
    }
    set(&mut config.poll_interval, args.poll_interval);
    if let Some(every) = args.cleanup_interval {
        config.cleanup_interval = (!every.is_zero()).then_some(every);
    }
    config.listen = !args.poll_only;
    config.pooler = args.pooler;
    set(&mut config.shutdown_grace, args.shutdown_grace);
    config.metrics_addr = args.metrics_addr;
    config.outbox = args.outbox.clone();
    set(&mut config.owner, args.owner.clone());
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// A flag given overrides the library's default.
fn set<T>(field: &mut T, flag: Option<T>) {
    if let Some(value) = flag {
        *field = value;
    }
}

/// `--publisher http`: the flags over [`HttpConfig::new`].
pub fn http_config(args: &Args) -> Result<HttpConfig, String> {
    let raw = args
        .http_url
        .as_deref()
        .ok_or("--publisher http needs --http-url")?;
    let url = raw
        .parse()
        .map_err(|e| format!("--http-url {raw:?} is not a URL: {e}"))?;
    let mut config = HttpConfig::new(url);
    for header in &args.http_headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("--http-header {header:?} is not \"Name: value\""))?;
        config
            .headers
            .push((name.trim().to_owned(), value.trim().to_owned()));
    }
    config.secret = args.http_secret.clone();
    set(&mut config.timeout, args.http_timeout);
    Ok(config)
}

/// `--publisher nats`: the flags over [`NatsConfig::default`].
pub fn nats_config(args: &Args) -> NatsConfig {
    let mut config = NatsConfig::default();
    set(&mut config.url, args.nats_url.clone());
    set(&mut config.subject_prefix, args.nats_subject_prefix.clone());
    set(&mut config.timeout, args.nats_timeout);
    config
}

/// `--publisher kafka`: the flags over [`KafkaConfig::default`].
pub fn kafka_config(args: &Args) -> Result<KafkaConfig, String> {
    let mut config = KafkaConfig::default();
    for option in &args.kafka_options {
        let (k, v) = option
            .split_once('=')
            .ok_or_else(|| format!("--kafka-option {option:?} is not key=value"))?;
        config
            .extra
            .push((k.trim().to_owned(), v.trim().to_owned()));
    }
    set(&mut config.bootstrap_servers, args.kafka_brokers.clone());
    set(&mut config.topic_prefix, args.kafka_topic_prefix.clone());
    set(&mut config.timeout, args.kafka_timeout);
    Ok(config)
}

/// `--publisher redis`: the flags over [`RedisConfig::default`].
pub fn redis_config(args: &Args) -> RedisConfig {
    let mut config = RedisConfig::default();
    set(&mut config.url, args.redis_url.clone());
    set(&mut config.stream_prefix, args.redis_stream_prefix.clone());
    if args.redis_maxlen.is_some() {
        config.maxlen = args.redis_maxlen;
    }
    set(&mut config.timeout, args.redis_timeout);
    config
}

/// `--publisher rabbitmq`: the flags over [`RabbitMqConfig::default`].
pub fn rabbitmq_config(args: &Args) -> RabbitMqConfig {
    let mut config = RabbitMqConfig::default();
    set(&mut config.url, args.rabbitmq_url.clone());
    set(&mut config.exchange, args.rabbitmq_exchange.clone());
    set(
        &mut config.routing_key_prefix,
        args.rabbitmq_routing_key_prefix.clone(),
    );
    set(&mut config.timeout, args.rabbitmq_timeout);
    config
}

/// The command line, its help showing each default the library applies
/// when a flag is left out (read from the config types, so help and
/// behaviour cannot disagree).
pub fn command() -> Command {
    let relay = RelayConfig::new(tokio_postgres::Config::new());
    let nats = NatsConfig::default();
    let kafka = KafkaConfig::default();
    let redis = RedisConfig::default();
    let rabbitmq = RabbitMqConfig::default();
    let time = |d: Duration| humantime::format_duration(d).to_string();
    let defaults = [
        ("batch_size", relay.batch_size.to_string()),
        ("concurrency", relay.concurrency.to_string()),
        ("lease", time(relay.lease)),
        ("poll_interval", time(relay.poll_interval)),
        (
            "cleanup_interval",
            relay.cleanup_interval.map_or_else(|| "0".into(), time),
        ),
        ("shutdown_grace", time(relay.shutdown_grace)),
        ("http_timeout", time(HttpConfig::DEFAULT_TIMEOUT)),
        ("nats_url", nats.url),
        ("nats_timeout", time(nats.timeout)),
        ("kafka_brokers", kafka.bootstrap_servers),
        ("kafka_timeout", time(kafka.timeout)),
        ("redis_url", redis.url),
        ("redis_timeout", time(redis.timeout)),
        ("rabbitmq_url", rabbitmq.url),
        ("rabbitmq_exchange", format!("{:?}", rabbitmq.exchange)),
        ("rabbitmq_timeout", time(rabbitmq.timeout)),
    ];
    defaults
        .into_iter()
        .fold(Args::command(), |command, (id, value)| {
            command.mut_arg(id, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} [default: {value}]"))
            })
        })
}

#[cfg(test)]
mod tests;
