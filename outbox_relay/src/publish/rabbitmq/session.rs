//! One connection and the confirm channel on it: opened (with the checks
//! [`RabbitMqPublisher::connect`] reports) and closed.

use super::{describe, redacted, RabbitMqPublisher};
use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use std::time::Duration;
use tokio::time::{timeout_at, Instant};

pub(super) struct Session {
    // Kept so the connection lives as long as its channel.
    connection: Connection,
    pub(super) channel: Channel,
}

impl Session {
    /// A new connection with a confirm channel, by `deadline`, and the
    /// publisher's exchange checked; the error names the URL (password
    /// masked) and the cause.
    pub(super) async fn open(
        publisher: &RabbitMqPublisher,
        deadline: Instant,
    ) -> Result<Session, String> {
        let shown = redacted(&publisher.url);
        let steps = async {
            let properties =
                ConnectionProperties::default().with_connection_name("outbox-relay".into());
            let connection = Connection::connect(&publisher.url, properties).await?;
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            if !publisher.exchange.is_empty() {
                // Passive: only checks; declaring it is the operator's
                // business (its type and durability are theirs to choose).
                let passive = ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                };
                channel
                    .exchange_declare(
                        publisher.exchange.as_str().into(),
                        ExchangeKind::Direct,
                        passive,
                        FieldTable::default(),
                    )
                    .await?;
            }
            Ok::<_, lapin::Error>(Session {
                connection,
                channel,
            })
        };
        match timeout_at(deadline, steps).await {
            Ok(Ok(session)) => Ok(session),
            Ok(Err(e)) => Err(format!("{shown}: {}", describe(&e))),
            Err(_) => Err(format!("{shown}: no answer within {:?}", publisher.timeout)),
        }
    }

    /// Both still open: not closed by the broker, a lost socket or a
    /// channel error.
    pub(super) fn usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// Close in the background, giving up after a second (a dead
    /// connection may never answer `connection.close`).
    pub(super) fn close(self) {
        tokio::spawn(async move {
            let Session {
                connection,
                channel,
            } = self;
            drop(channel);
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                connection.close(200, "outbox-relay reconnecting".into()),
            )
            .await;
        });
    }
}
