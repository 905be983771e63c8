//! Where the relay's logs and spans go: logs to stderr (filtered by
//! `--log`), and with `--otlp-endpoint` the publish spans
//! (`outbox_relay::trace`) to an OpenTelemetry collector over OTLP/HTTP.
//!
//! OTLP/gRPC is not offered: it would bring tonic's transport and a second
//! HTTP/2 stack for what OTLP/HTTP does as well; every collector accepts
//! both (port 4318 for HTTP).

use clap::{Args, ValueEnum};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The flags of this module (flattened into the command line).
#[derive(Debug, Args)]
pub struct TelemetryArgs {
    /// Export a span per published message, linked to the producer's
    /// traceparent, to this OTLP/HTTP collector (e.g. http://localhost:4318;
    /// /v1/traces is appended). Needs a build with the `otlp` feature.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// The OTLP encoding.
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_PROTOCOL",
        value_enum,
        default_value = "http/protobuf"
    )]
    pub otlp_protocol: OtlpProtocol,
    /// The service.name the spans carry.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "outbox-relay")]
    pub otlp_service_name: String,
}

/// OTLP over HTTP, in one of its two encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OtlpProtocol {
    /// Protocol buffers (the OTLP default).
    #[value(name = "http/protobuf")]
    HttpProtobuf,
    /// JSON.
    #[value(name = "http/json")]
    HttpJson,
}

/// What must be flushed before the process exits.
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Install the subscriber: logs, and the exporter when asked for.
    pub fn init(log: &str, args: &TelemetryArgs) -> Result<Self, String> {
        let filter = EnvFilter::try_new(log).unwrap_or_else(|_| "info".into());
        // The publish spans are for the exporter: logs have no use for a
        // span per message, and leaving them out keeps them free (a span
        // no layer wants is never built).
        let filter = filter.add_directive(
            format!("{}=off", outbox_relay::trace::TARGET)
                .parse()
                .map_err(|e| format!("log filter: {e}"))?,
        );
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter);
        let registry = tracing_subscriber::registry().with(logs);
        let Some(endpoint) = &args.otlp_endpoint else {
            registry.init();
            return Ok(Telemetry {
                #[cfg(feature = "otlp")]
                provider: None,
            });
        };
        #[cfg(feature = "otlp")]
        {
            let (provider, spans) = otlp::layer(endpoint, args)?;
            registry.with(spans).init();
            Ok(Telemetry {
                provider: Some(provider),
            })
        }
        #[cfg(not(feature = "otlp"))]
        {
            let _ = (endpoint, registry);
            Err(
                "--otlp-endpoint: this outbox-relay was built without the otlp feature; \
                 build it with `cargo build -p outbox_relay --features otlp`"
                    .into(),
            )
        }
    }

    /// Export what is still buffered (the batch exporter sends every few
    /// seconds; spans of the last batches would otherwise be lost).
    pub fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                eprintln!("outbox-relay: exporting the last spans: {e}");
            }
        }
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    use super::{OtlpProtocol, TelemetryArgs};
    use opentelemetry::trace::TracerProvider;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use opentelemetry_sdk::Resource;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::Layer;

    /// The exporter and the layer that feeds it the publish spans only.
    pub fn layer<S>(
        endpoint: &str,
        args: &TelemetryArgs,
    ) -> Result<(SdkTracerProvider, impl Layer<S>), String>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        reqwest::Url::parse(&url).map_err(|e| format!("--otlp-endpoint {endpoint}: {e}"))?;
        let protocol = match args.otlp_protocol {
            OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
            OtlpProtocol::HttpJson => Protocol::HttpJson,
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_protocol(protocol)
            .build()
            .map_err(|e| format!("--otlp-endpoint {endpoint}: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(args.otlp_service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("outbox-relay");
        let spans = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(
                Targets::new().with_target(outbox_relay::trace::TARGET, tracing::Level::INFO),
            );
        Ok((provider, spans))
    }
}
