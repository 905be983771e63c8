//! The README's Rust examples, compiled: `cargo test` and `cargo clippy
//! --all-targets` build this file, and `tests/readme.rs` checks that each
//! region between `// README:` markers appears in the README verbatim (its
//! indentation removed), so the README cannot show code that does not
//! build.
//!
//! Run it against a database with the extension:
//! `cargo run -p outbox_relay --example readme -- 'host=/var/run/postgresql dbname=app'`

use outbox_client::{NewMessage, Store, Topic};
use outbox_relay::{ConnInfo, Relay, RelayConfig, StdoutPublisher};
use serde_json::json;
use tokio_util::sync::CancellationToken;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

async fn produce(client: &mut tokio_postgres::Client) -> Result<()> {
    // README: produce
    // Produce inside your own transaction: the event exists iff the order does.
    let tx = client.transaction().await?;
    tx.execute("INSERT INTO orders (id, total) VALUES (42, 99.5)", &[])
        .await?;
    let event = NewMessage::new(Topic::new("orders.created")?, &json!({"order_id": 42}))?
        .with_key("order-42");
    Store.enqueue(&tx, &event).await?;
    tx.commit().await?;
    // README: end
    Ok(())
}

async fn relay(db_config: tokio_postgres::Config, shutdown_token: CancellationToken) -> Result<()> {
    // README: relay
    // Relay: claim → publish → complete, woken by the doorbell, until cancelled.
    let relay = Relay::new(RelayConfig::new(db_config), StdoutPublisher::default())?;
    relay.run(shutdown_token).await?;
    // README: end
    Ok(())
}

async fn tls(url: &str) -> Result<RelayConfig> {
    // README: tls
    let info: ConnInfo = url.parse()?; // Error::Config { field: "sslmode", .. } etc.
    let (client, connection) = outbox_relay::connect(&info.db, &info.tls).await?;
    let mut config = RelayConfig::new(info.db);
    config.tls = info.tls; // every relay connection uses it
                           // README: end
    tokio::spawn(connection);
    Store.check_extension(&client).await?;
    Ok(config)
}

#[tokio::main]
async fn main() -> Result<()> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: readme <connection string>")?;
    let config = tls(&url).await?;
    let (mut client, connection) = outbox_relay::connect(&config.db, &config.tls).await?;
    tokio::spawn(connection);
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, total numeric)")
        .await?;
    produce(&mut client).await?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        stop.cancel();
    });
    relay(config.db, shutdown).await
}
