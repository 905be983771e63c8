//! `--envelope` and the CloudEvents flags: how every publisher wraps a
//! message (outbox_relay::publish::cloudevents has the attribute rules).

use clap::{Args, ValueEnum};
use outbox_relay::publish::{CloudEvents, ContentMode, Envelope};

/// The flags of this module (flattened into the command line).
#[derive(Debug, Args)]
pub struct EnvelopeArgs {
    /// How each message is wrapped: `outbox`, each publisher's own form
    /// (README), or `cloudevents`, a CloudEvents 1.0 event (id = outbox id,
    /// type = topic, subject = key, time = created_at).
    #[arg(long, env = "OUTBOX_ENVELOPE", value_enum, default_value = "outbox")]
    pub envelope: EnvelopeKind,
    /// The CloudEvents `source`, required with --envelope cloudevents: a
    /// URI-reference naming this outbox (consumers deduplicate on source and
    /// id), e.g. https://orders.example.com/outbox.
    #[arg(long, env = "OUTBOX_CLOUDEVENTS_SOURCE", value_name = "URI")]
    pub cloudevents_source: Option<String>,
    /// CloudEvents content mode: `binary` (payload as the body, attributes
    /// as headers) or `structured` (the whole event as JSON). Default:
    /// binary for http, kafka, nats and rabbitmq; structured for stdout and
    /// redis, whose bindings have no headers.
    #[arg(long, env = "OUTBOX_CLOUDEVENTS_MODE", value_enum)]
    pub cloudevents_mode: Option<Mode>,
}

/// `--envelope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvelopeKind {
    /// Each publisher's own form.
    Outbox,
    /// CloudEvents 1.0.
    Cloudevents,
}

/// `--cloudevents-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Attributes as protocol headers.
    Binary,
    /// The JSON event format as the body.
    Structured,
}

impl EnvelopeArgs {
    /// The envelope, or what is wrong with the flags.
    pub fn envelope(&self) -> Result<Envelope, String> {
        match self.envelope {
            EnvelopeKind::Outbox => {
                if self.cloudevents_source.is_some() || self.cloudevents_mode.is_some() {
                    return Err(
                        "--cloudevents-source and --cloudevents-mode only apply with \
                                --envelope cloudevents"
                            .into(),
                    );
                }
                Ok(Envelope::Outbox)
            }
            EnvelopeKind::Cloudevents => {
                let Some(source) = &self.cloudevents_source else {
                    return Err("--envelope cloudevents needs --cloudevents-source: a \
                                URI-reference naming this outbox, e.g. \
                                https://orders.example.com/outbox"
                        .into());
                };
                let mut events = CloudEvents::new(source.clone()).map_err(|e| e.to_string())?;
                if let Some(mode) = self.cloudevents_mode {
                    events = events.with_mode(match mode {
                        Mode::Binary => ContentMode::Binary,
                        Mode::Structured => ContentMode::Structured,
                    });
                }
                Ok(Envelope::CloudEvents(events))
            }
        }
    }
}
