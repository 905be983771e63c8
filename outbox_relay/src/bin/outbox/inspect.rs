//! Looking: `stats`, `blocked-keys`, `peek`. Nothing here changes the
//! outbox.

use crate::output::Rows;
use crate::{Db, Failure};
use serde_json::Value;
use tokio_postgres::types::Type;

const BLOCKED_KEYS: &str = include_str!("sql/blocked_keys.sql");
const PEEK: &str = include_str!("sql/peek.sql");

/// `outbox.stats()`, with the lag in seconds.
pub async fn stats(db: &Db, json: bool) -> Result<(), Failure> {
    let stats = db.store.stats(&db.client).await?;
    let columns = [
        "topic",
        "ready",
        "blocked",
        "scheduled",
        "leased",
        "dead",
        "lag_seconds",
    ];
    let rows = stats
        .into_iter()
        .map(|s| {
            vec![
                Value::from(s.topic),
                Value::from(s.ready),
                Value::from(s.blocked),
                Value::from(s.scheduled),
                Value::from(s.leased),
                Value::from(s.dead),
                // Milliseconds are what an operator can act on.
                s.oldest_ready_age_seconds
                    .map_or(Value::Null, |a| Value::from((a * 1000.0).round() / 1000.0)),
            ]
        })
        .collect();
    let columns = columns.iter().map(|c| (*c).to_owned()).collect();
    Rows { columns, rows }.print(json, "the outbox is empty");
    Ok(())
}

/// `outbox.blocked_keys()`.
pub async fn blocked_keys(db: &Db, limit: i32, json: bool) -> Result<(), Failure> {
    let rows = db
        .client
        .query_typed(&db.sql(BLOCKED_KEYS), &[(&limit, Type::INT4)])
        .await?;
    Rows::from_db(&rows).print(json, "no key is blocked");
    Ok(())
}

/// The next messages a relay would get (sql/peek.sql).
pub async fn peek(db: &Db, topics: &[String], limit: i64, json: bool) -> Result<(), Failure> {
    let topics = (!topics.is_empty()).then_some(topics);
    let rows = db
        .client
        .query_typed(
            &db.sql(PEEK),
            &[(&topics, Type::TEXT_ARRAY), (&limit, Type::INT8)],
        )
        .await?;
    Rows::from_db(&rows).print(json, "nothing is ready to be claimed");
    Ok(())
}
