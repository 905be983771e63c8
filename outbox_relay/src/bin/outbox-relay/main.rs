//! `outbox-relay`: relay the outbox of one database to a broker.
//!
//! Logs go to stderr; with `--publisher stdout` the messages go to stdout,
//! one JSON object per line.

mod args;
mod envelope;
mod telemetry;

use args::{Args, PublisherKind};
use clap::FromArgMatches;
use outbox_relay::{
    error_chain, Error, HttpConfig, HttpPublisher, KafkaConfig, KafkaPublisher, NatsConfig,
    NatsPublisher, Publisher, RabbitMqConfig, RabbitMqPublisher, RedisConfig, RedisPublisher,
    Relay, StdoutPublisher,
};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

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
    let matches = args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let telemetry = match telemetry::Telemetry::init(&args.log, &args.telemetry) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("outbox-relay: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match args::relay_config(&args, &matches) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("outbox-relay: {e}");
            return ExitCode::from(2);
        }
    };
    let envelope = match args.envelope.envelope() {
        Ok(envelope) => envelope,
        Err(e) => {
            eprintln!("outbox-relay: {e}");
            return ExitCode::from(2);
        }
    };
    let shutdown = CancellationToken::new();
    cancel_on_signals(shutdown.clone());
    let result = match args.publisher {
        PublisherKind::Stdout => {
            let publisher = StdoutPublisher::with_envelope(envelope);
            run(publisher.and_then(|p| Relay::new(config, p)), shutdown).await
        }
        PublisherKind::Http => {
            let publisher = match args::http_config(&args) {
                Ok(http) => HttpPublisher::new(HttpConfig { envelope, ..http }),
                Err(e) => {
                    eprintln!("outbox-relay: {e}");
                    return ExitCode::from(2);
                }
            };
            run(publisher.and_then(|p| Relay::new(config, p)), shutdown).await
        }
        PublisherKind::Nats => {
            let nats = NatsConfig {
                envelope,
                ..args::nats_config(&args)
            };
            match NatsPublisher::connect(nats).await {
                Ok(p) => run(Relay::new(config, p), shutdown).await,
                Err(e) => Err(e),
            }
        }
        PublisherKind::Kafka => {
            let kafka = match args::kafka_config(&args) {
                Ok(kafka) => KafkaConfig { envelope, ..kafka },
                Err(e) => {
                    eprintln!("outbox-relay: {e}");
                    return ExitCode::from(2);
                }
            };
            match KafkaPublisher::connect(kafka).await {
                Ok(p) => run(Relay::new(config, p), shutdown).await,
                Err(e) => Err(e),
            }
        }
        PublisherKind::Redis => {
            let redis = RedisConfig {
                envelope,
                ..args::redis_config(&args)
            };
            match RedisPublisher::connect(redis).await {
                Ok(p) => run(Relay::new(config, p), shutdown).await,
                Err(e) => Err(e),
            }
        }
        PublisherKind::Rabbitmq => {
            let rabbitmq = RabbitMqConfig {
                envelope,
                ..args::rabbitmq_config(&args)
            };
            match RabbitMqPublisher::connect(rabbitmq).await {
                Ok(p) => run(Relay::new(config, p), shutdown).await,
                Err(e) => Err(e),
            }
        }
    };
    telemetry.shutdown();
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
