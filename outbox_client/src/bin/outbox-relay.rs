//! `outbox-relay`: relay the outbox of one database to a broker.
//!
//! Logs go to stderr; with `--publisher stdout` the messages go to stdout,
//! one JSON object per line.

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use outbox_client::{
    error_chain, ConnInfo, Error, HttpConfig, HttpPublisher, KafkaConfig, KafkaPublisher,
    NatsConfig, NatsPublisher, Publisher, Relay, RelayConfig, StdoutPublisher, TlsOptions,
};
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PublisherKind {
    /// One JSON object per line on stdout (the embedded default).
    Stdout,
    /// POST each message as JSON to --http-url (Standard Webhooks signature).
    Http,
    /// Publish to NATS JetStream (subject = --nats-subject-prefix + topic).
    Nats,
    /// Produce to Kafka (topic = --kafka-topic-prefix + topic, key = outbox key).
    Kafka,
}

/// Relay messages from a PostgreSQL outbox (CREATE EXTENSION outbox) to a broker.
///
/// Every flag can also be set through the environment variable shown.
#[derive(Debug, Parser)]
#[command(name = "outbox-relay", version, about, long_about = None)]
struct Args {
    /// PostgreSQL connection string: a URL (postgres://user@host:5432/db) or
    /// key=value pairs (host=/var/run/postgresql dbname=app). It may carry
    /// sslmode, sslrootcert, sslcert and sslkey as libpq does.
    #[arg(long, env = "OUTBOX_DATABASE_URL", hide_env_values = true)]
    database_url: String,

    /// TLS to PostgreSQL (over TCP; unix sockets are never encrypted):
    /// disable; prefer (the default: TLS if the server offers it, not
    /// verified, else plain text); require (TLS, verified only against
    /// --sslrootcert if given); verify-ca (the certificate chains to
    /// --sslrootcert, or the system roots); verify-full (verify-ca, and the
    /// certificate names the host). A flag that contradicts the connection
    /// string is an error; PGSSL* variables only fill in what it leaves out.
    #[arg(long, env = "PGSSLMODE", value_name = "MODE")]
    sslmode: Option<String>,

    /// PEM file of the CA certificate(s) to trust, or "system" (the system
    /// roots; needs verify-full). Default: the system roots for verify-*.
    #[arg(long, env = "PGSSLROOTCERT", value_name = "FILE")]
    sslrootcert: Option<String>,

    /// PEM client certificate, for `cert` authentication (needs --sslkey).
    #[arg(long, env = "PGSSLCERT", value_name = "FILE")]
    sslcert: Option<String>,

    /// The client certificate's unencrypted PEM key (mode 0600).
    #[arg(long, env = "PGSSLKEY", value_name = "FILE")]
    sslkey: Option<String>,

    /// Where messages go.
    #[arg(long, env = "OUTBOX_PUBLISHER", value_enum, default_value = "stdout")]
    publisher: PublisherKind,

    /// Messages claimed per batch.
    #[arg(long, env = "OUTBOX_BATCH_SIZE", default_value_t = 100)]
    batch_size: i32,

    /// Workers, each with its own connection and one batch in flight.
    #[arg(long, env = "OUTBOX_CONCURRENCY", default_value_t = 2)]
    concurrency: usize,

    /// Lease per claim (e.g. 30s, 2m); extended while a slow publish runs.
    #[arg(long, env = "OUTBOX_LEASE", default_value = "30s", value_parser = humantime::parse_duration)]
    lease: Duration,

    /// Relay only this topic; repeat for several. Default: every topic.
    #[arg(long = "topic", env = "OUTBOX_TOPICS", value_delimiter = ',')]
    topics: Vec<String>,

    /// Longest sleep while idle; also how soon retries falling due are seen.
    #[arg(long, env = "OUTBOX_POLL_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    poll_interval: Duration,

    /// Do not LISTEN for the doorbell, only poll (for connection poolers in
    /// transaction mode, which cannot LISTEN).
    #[arg(long, env = "OUTBOX_POLL_ONLY")]
    poll_only: bool,

    /// The name on this relay's leases. Default: <hostname>:<pid>:<random>.
    #[arg(long, env = "OUTBOX_OWNER")]
    owner: Option<String>,

    /// How long in-flight batches may take to finish after SIGINT/SIGTERM.
    #[arg(long, env = "OUTBOX_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,

    /// Webhook URL for --publisher http.
    #[arg(long, env = "OUTBOX_HTTP_URL", required_if_eq("publisher", "http"))]
    http_url: Option<String>,

    /// Extra header for every webhook request, as "Name: value"; repeatable.
    #[arg(
        long = "http-header",
        env = "OUTBOX_HTTP_HEADERS",
        value_delimiter = '\n'
    )]
    http_headers: Vec<String>,

    /// Signing secret (raw, or whsec_<base64>); adds webhook-signature.
    #[arg(long, env = "OUTBOX_HTTP_SECRET", hide_env_values = true)]
    http_secret: Option<String>,

    /// Timeout of one webhook request.
    #[arg(long, env = "OUTBOX_HTTP_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    http_timeout: Duration,

    /// NATS server URL(s), comma-separated, for --publisher nats.
    #[arg(long, env = "OUTBOX_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,

    /// Prepended to the topic to make the NATS subject.
    #[arg(long, env = "OUTBOX_NATS_SUBJECT_PREFIX", default_value = "")]
    nats_subject_prefix: String,

    /// How long to wait for a JetStream acknowledgement.
    #[arg(long, env = "OUTBOX_NATS_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    nats_timeout: Duration,

    /// Kafka bootstrap servers, for --publisher kafka.
    #[arg(long, env = "OUTBOX_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    kafka_brokers: String,

    /// Prepended to the topic to make the Kafka topic.
    #[arg(long, env = "OUTBOX_KAFKA_TOPIC_PREFIX", default_value = "")]
    kafka_topic_prefix: String,

    /// How long a record may take to be acknowledged.
    #[arg(long, env = "OUTBOX_KAFKA_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    kafka_timeout: Duration,

    /// Extra librdkafka setting as key=value (e.g. security.protocol=SSL); repeatable.
    #[arg(
        long = "kafka-option",
        env = "OUTBOX_KAFKA_OPTIONS",
        value_delimiter = '\n'
    )]
    kafka_options: Vec<String>,

    /// Serve Prometheus /metrics, /healthz and /readyz on this address
    /// (e.g. 127.0.0.1:9187). Default: not served.
    #[arg(long, env = "OUTBOX_METRICS_ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,

    /// Log filter (tracing syntax, e.g. info, outbox_client=debug).
    #[arg(long, env = "OUTBOX_LOG", default_value = "info,async_nats=warn")]
    log: String,
}

/// The TLS flags given on the command line (`explicit`) and those from
/// PGSSL* variables (`fallback`), for [`ConnInfo::parse_with`].
fn tls_options(args: &Args, matches: &ArgMatches) -> (TlsOptions, TlsOptions) {
    let (mut explicit, mut fallback) = (TlsOptions::default(), TlsOptions::default());
    let flags = [
        ("sslmode", &args.sslmode),
        ("sslrootcert", &args.sslrootcert),
        ("sslcert", &args.sslcert),
        ("sslkey", &args.sslkey),
    ];
    for (name, value) in flags {
        let from_env = matches.value_source(name) == Some(ValueSource::EnvVariable);
        let target = if from_env {
            &mut fallback
        } else {
            &mut explicit
        };
        let slot = match name {
            "sslmode" => &mut target.sslmode,
            "sslrootcert" => &mut target.sslrootcert,
            "sslcert" => &mut target.sslcert,
            _ => &mut target.sslkey,
        };
        slot.clone_from(value);
    }
    (explicit, fallback)
}

fn config(args: &Args, matches: &ArgMatches) -> Result<RelayConfig, String> {
    let (explicit, fallback) = tls_options(args, matches);
    let info = ConnInfo::parse_with(&args.database_url, &explicit, &fallback).map_err(|e| {
        match e {
            // Name the flag the user typed, not the library's word for it.
            outbox_client::Error::Config {
                field: "connection string",
                reason,
            } => format!("--database-url (OUTBOX_DATABASE_URL): {reason}"),
            other => other.to_string(),
        }
    })?;
    let mut config = RelayConfig::new(info.db);
    config.tls = info.tls;
    config.batch_size = args.batch_size;
    config.concurrency = args.concurrency;
    config.lease = args.lease;
    config.topics = (!args.topics.is_empty()).then(|| args.topics.clone());
    config.poll_interval = args.poll_interval;
    config.listen = !args.poll_only;
    config.shutdown_grace = args.shutdown_grace;
    config.metrics_addr = args.metrics_addr;
    if let Some(owner) = &args.owner {
        config.owner = owner.clone();
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn http_config(args: &Args) -> Result<HttpConfig, String> {
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
    config.timeout = args.http_timeout;
    Ok(config)
}

async fn run<P: Publisher>(
    relay: Result<Relay<P>, Error>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    relay?.run(shutdown).await
}

/// Cancel on SIGINT or SIGTERM.
fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        token.cancel();
    });
}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log).unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match config(&args, &matches) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("outbox-relay: {e}");
            return ExitCode::from(2);
        }
    };
    let shutdown = CancellationToken::new();
    cancel_on_signals(shutdown.clone());
    let result = match args.publisher {
        PublisherKind::Stdout => {
            run(Relay::new(config, StdoutPublisher::default()), shutdown).await
        }
        PublisherKind::Http => {
            let publisher = match http_config(&args) {
                Ok(http) => HttpPublisher::new(http),
                Err(e) => {
                    eprintln!("outbox-relay: {e}");
                    return ExitCode::from(2);
                }
            };
            run(publisher.and_then(|p| Relay::new(config, p)), shutdown).await
        }
        PublisherKind::Nats => {
            let nats = NatsConfig {
                url: args.nats_url.clone(),
                subject_prefix: args.nats_subject_prefix.clone(),
                timeout: args.nats_timeout,
            };
            match NatsPublisher::connect(nats).await {
                Ok(p) => run(Relay::new(config, p), shutdown).await,
                Err(e) => Err(e),
            }
        }
        PublisherKind::Kafka => {
            let mut extra = Vec::new();
            for option in &args.kafka_options {
                match option.split_once('=') {
                    Some((k, v)) => extra.push((k.trim().to_owned(), v.trim().to_owned())),
                    None => {
                        eprintln!("outbox-relay: --kafka-option {option:?} is not key=value");
                        return ExitCode::from(2);
                    }
                }
            }
            let kafka = KafkaConfig {
                bootstrap_servers: args.kafka_brokers.clone(),
                topic_prefix: args.kafka_topic_prefix.clone(),
                timeout: args.kafka_timeout,
                extra,
            };
            match KafkaPublisher::connect(kafka).await {
                Ok(p) => run(Relay::new(config, p), shutdown).await,
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let advice = match &e {
                Error::Db(_) if e.is_transient() => {
                    " (is PostgreSQL running and reachable at --database-url?)"
                }
                _ => "",
            };
            // The whole chain: "db error" alone does not say that the CA
            // is wrong or pg_hba.conf wants TLS.
            eprintln!("outbox-relay: {}{advice}", error_chain(&e));
            match e {
                Error::Config { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
