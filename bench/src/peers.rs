//! Installing the systems under test and putting each back to empty
//! between runs.

use crate::cluster::Cluster;
use crate::ops::{System, SCHEMA};
use anyhow::{Context, Result};
use tokio_postgres::Client;

/// Create the database's extensions (the outbox at `outbox_version`, or
/// the installed default), the peers' queues and the raw tables.
pub async fn install(
    cluster: &Cluster,
    client: &Client,
    outbox_version: Option<&str>,
) -> Result<()> {
    let create = match outbox_version {
        None => "CREATE EXTENSION outbox".to_owned(),
        Some(v) => {
            anyhow::ensure!(
                !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'),
                "--outbox-version {v:?}: expected a version such as 0.1.0"
            );
            format!("CREATE EXTENSION outbox VERSION '{v}'")
        }
    };
    client
        .batch_execute(&create)
        .await
        .with_context(|| format!("{create} (is it installed? `make test` installs it)"))?;
    client.batch_execute("CREATE EXTENSION pgq").await.context(
        "CREATE EXTENSION pgq (package postgresql-15-pgq3; scripts/bench.sh installs it)",
    )?;
    // pgmq as its crate installs it: the SQL embedded in the crate, applied
    // through the crate's own installer.
    let options = sqlx::postgres::PgConnectOptions::new()
        .socket(cluster.socket_dir())
        .port(cluster.port())
        .username("postgres")
        .database("bench");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .context("connecting pgmq's installer")?;
    let pgmq = pgmq::PGMQueueExt::new_with_pool(pool).await;
    pgmq.install_sql_from_embedded()
        .await
        .context("installing pgmq from the pgmq crate's embedded SQL")?;
    pgmq.connection.close().await;
    client.batch_execute(SCHEMA).await?;
    for system in [System::Pgq, System::Pgmq] {
        reset(client, system).await?;
    }
    Ok(())
}

/// The version string of each peer, for the report.
pub async fn versions(client: &Client) -> Result<Vec<(String, String)>> {
    let rows = client
        .query(
            "SELECT extname, extversion FROM pg_extension WHERE extname IN ('outbox', 'pgq') \
             UNION ALL SELECT 'pgmq', (SELECT version FROM pgmq.__pgmq_migrations \
             ORDER BY run_at DESC LIMIT 1) ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Empty `system`'s queue (and the business table), so every run starts
/// from the same state.
pub async fn reset(client: &Client, system: System) -> Result<()> {
    let sql = match system {
        System::Raw => "TRUNCATE bench.raw_messages, bench.orders",
        System::Outbox => {
            return crate::footprint::empty_outbox(client, &["bench.orders"])
                .await
                .context("resetting outbox");
        }
        System::Pgq => {
            "SELECT pgq.drop_queue(queue_name, true) FROM pgq.queue WHERE queue_name = 'bench';
             SELECT pgq.create_queue('bench');
             SELECT pgq.register_consumer('bench', 'bench');"
        }
        System::Pgmq => {
            "SELECT pgmq.drop_queue(queue_name) FROM pgmq.meta WHERE queue_name = 'bench';
             SELECT pgmq.create('bench');"
        }
    };
    client
        .batch_execute(sql)
        .await
        .with_context(|| format!("resetting {}", system.name()))
}
