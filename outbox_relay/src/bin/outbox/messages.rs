//! `outbox messages`, `outbox message ID` and `outbox cleanup`: messages one
//! by one in any state (outbox.list_messages, outbox.get_message), and the
//! housekeeping call. Listing changes nothing.

use crate::output::Rows;
use crate::{Db, Failure};
use clap::Args;
use outbox_client::{MessageFilter, MessageInfo, MessageState};
use serde_json::Value;

/// Which messages `outbox messages` lists.
#[derive(Debug, Args)]
pub struct Filter {
    /// Only this topic.
    #[arg(long)]
    topic: Option<String>,
    /// Only this state: ready, scheduled, retrying, leased, dead, published.
    #[arg(long, value_parser = parse_state)]
    state: Option<MessageState>,
    /// Only this ordering key.
    #[arg(long)]
    key: Option<String>,
    /// Only messages whose tenant-id header is this.
    #[arg(long)]
    tenant_id: Option<String>,
    /// Only messages whose correlation-id header is this.
    #[arg(long)]
    correlation_id: Option<String>,
    /// The next page: messages with ids above this one.
    #[arg(long, value_name = "ID")]
    after: Option<i64>,
    /// Most messages to show.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i32).range(0..))]
    limit: i32,
}

fn parse_state(s: &str) -> Result<MessageState, String> {
    s.parse().map_err(|e: outbox_client::Error| e.to_string())
}

const COLUMNS: [&str; 12] = [
    "id",
    "topic",
    "key",
    "state",
    "attempt",
    "created_at",
    "deliver_at",
    "lease_owner",
    "last_error",
    "finished_at",
    "dead_reason",
    "headers",
];

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::from(t.to_rfc3339()))
}

fn row(m: &MessageInfo, with_payload: bool) -> Vec<Value> {
    let mut row = vec![
        Value::from(m.id),
        Value::from(m.topic.clone()),
        m.key.clone().map_or(Value::Null, Value::from),
        Value::from(m.state.as_str()),
        Value::from(m.attempt),
        time(Some(m.created_at)),
        time(m.deliver_at),
        m.lease_owner.clone().map_or(Value::Null, Value::from),
        m.last_error.clone().map_or(Value::Null, Value::from),
        time(m.finished_at),
        m.dead_reason.clone().map_or(Value::Null, Value::from),
        m.headers.clone().map_or(Value::Null, Value::from),
    ];
    if with_payload {
        row.push(Value::from(m.payload.clone()));
    }
    row
}

/// `outbox messages`: one page, oldest id first.
pub async fn list(db: &Db, f: &Filter, json: bool) -> Result<(), Failure> {
    let mut filter = MessageFilter::default().max_rows(f.limit);
    filter.topic.clone_from(&f.topic);
    filter.state = f.state;
    filter.key.clone_from(&f.key);
    filter.tenant_id.clone_from(&f.tenant_id);
    filter.correlation_id.clone_from(&f.correlation_id);
    filter.after_id = f.after;
    let messages = db.store.list_messages(&db.client, &filter).await?;
    let rows = Rows {
        columns: COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
        rows: messages.iter().map(|m| row(m, false)).collect(),
    };
    rows.print(json, "no message matches");
    if let (false, Some(last)) = (json, messages.last()) {
        if messages.len() == usize::try_from(f.limit).unwrap_or(usize::MAX) {
            eprintln!("more may follow: outbox messages --after {} ...", last.id);
        }
    }
    Ok(())
}

/// `outbox message ID`: everything about one message, its payload too.
pub async fn show(db: &Db, id: i64, json: bool) -> Result<(), Failure> {
    let message = db.store.get_message(&db.client, id).await?;
    let mut columns: Vec<String> = COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    columns.push("payload".to_owned());
    let rows = Rows {
        columns,
        rows: message.iter().map(|m| row(m, true)).collect(),
    };
    rows.print(
        json,
        &format!(
            "message {id} is no longer in the outbox (published and not kept by \
             outbox.retention, or its transaction rolled back)"
        ),
    );
    Ok(())
}

/// `outbox cleanup`: call outbox.cleanup() until it finds nothing more.
pub async fn cleanup(db: &Db, max_rows: i32, json: bool) -> Result<(), Failure> {
    let mut removed = 0u64;
    loop {
        let n = db.store.cleanup(&db.client, max_rows).await?;
        removed += n;
        if n < u64::try_from(max_rows).unwrap_or(0) {
            break;
        }
    }
    let rows = Rows {
        columns: vec!["removed".to_owned()],
        rows: vec![vec![Value::from(removed)]],
    };
    rows.print(json, "");
    Ok(())
}
