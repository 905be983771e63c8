//! Decoding one row of `outbox.claim()`: a [`Message`], or
//! [`Undeliverable`] when a column cannot be read here (headers that are not
//! a JSON object of strings, written around `enqueue`), so one bad row never
//! costs the rest of its batch. The payload is taken as the text `jsonb`
//! prints and never fails.

use crate::types::{LeaseToken, Message, Undeliverable};
use crate::Error;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio_postgres::types::FromSql;
use tokio_postgres::types::Json;
use tokio_postgres::Row;

/// Column `idx` of a claimed row, or why not (the cause only: the value is
/// producer data and stays out of error texts).
fn column<'a, T: FromSql<'a>>(row: &'a Row, idx: usize, name: &str) -> Result<T, String> {
    row.try_get(idx).map_err(|e| {
        let cause = std::error::Error::source(&e).map_or_else(|| e.to_string(), |c| c.to_string());
        format!("{name}: {cause}")
    })
}

/// Headers are a JSON object of strings: the extension checks that at
/// enqueue, and brokers can carry nothing else, so anything else (a row
/// written around the extension) is undeliverable rather than guessed at.
fn check_headers(headers: Option<Value>) -> Result<Option<Value>, String> {
    match &headers {
        None => Ok(headers),
        Some(Value::Object(map)) if map.values().all(Value::is_string) => Ok(headers),
        Some(Value::Object(_)) => Err("headers: a header value is not a string".into()),
        Some(_) => Err("headers: not a JSON object".into()),
    }
}

/// One claimed row: a message, or undeliverable when any column fails to
/// decode. Only a row without a readable id or lease token is an error: it
/// cannot even be dead-lettered, and since the database makes both columns
/// (never a producer), it means the client and the installed extension
/// disagree about `outbox.claim()`'s result. That stops the relay instead of
/// letting it lease and abandon batch after batch.
pub(crate) fn decode(row: &Row) -> Result<Result<Message, Undeliverable>, Error> {
    let fence = |e: String| Error::Config {
        field: "db",
        reason: format!(
            "outbox.claim() returned a row this client cannot read ({e}); is the installed \
             outbox extension a version this client supports?"
        ),
    };
    let id: i64 = column(row, 0, "id").map_err(fence)?;
    let lease_token = LeaseToken(column(row, 6, "lease_token").map_err(fence)?);
    let message = (|| {
        Ok(Message {
            id,
            topic: column(row, 1, "topic")?,
            key: column(row, 2, "key")?,
            payload: column::<Json<Box<RawValue>>>(row, 3, "payload")?.0,
            headers: check_headers(column(row, 4, "headers")?)?,
            attempt: column(row, 5, "attempt")?,
            lease_token,
            lease_expires_at: column(row, 7, "lease_expires_at")?,
            created_at: column(row, 8, "created_at")?,
        })
    })();
    Ok(message.map_err(|reason: String| Undeliverable {
        id,
        lease_token,
        topic: column(row, 1, "topic").ok(),
        reason,
    }))
}

#[cfg(test)]
mod tests {
    use super::check_headers;
    use serde_json::json;

    #[test]
    fn headers_must_be_an_object_of_strings() {
        let ok = [None, Some(json!({})), Some(json!({"trace-id": "abc"}))];
        for h in ok {
            assert_eq!(check_headers(h.clone()), Ok(h));
        }
        let not_strings = [json!({"n": 1}), json!({"a": "b", "n": null})];
        for h in not_strings {
            assert_eq!(
                check_headers(Some(h)),
                Err("headers: a header value is not a string".into())
            );
        }
        for h in [json!([]), json!("a"), json!(1), json!(null)] {
            assert_eq!(
                check_headers(Some(h)),
                Err("headers: not a JSON object".into())
            );
        }
    }
}
