//! The rules for names and texts: topics, keys, owners, headers.

use crate::{
    Invalid, MAX_DEDUP_KEY_BYTES, MAX_HEADERS, MAX_HEADERS_BYTES, MAX_HEADER_NAME_BYTES,
    MAX_KEY_BYTES, MAX_OWNER_BYTES, MAX_TOPIC_BYTES,
};
use serde_json::Value;

const TOPIC_HINT: &str = "A topic is 1 to 249 characters of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit, e.g. 'orders.created'.";

/// Topics name broker destinations, so they follow the strictest common rule
/// (Kafka's): `[A-Za-z0-9][A-Za-z0-9._-]{0,248}`.
///
/// ```
/// use outbox_rules::topic;
/// assert!(topic("orders.created").is_ok());
/// assert!(topic("orders created").is_err());
/// ```
pub fn topic(t: &str) -> Result<(), Invalid> {
    if t.is_empty() {
        return Err(Invalid::new("topic", "topic is empty", TOPIC_HINT));
    }
    if t.len() > MAX_TOPIC_BYTES {
        return Err(Invalid::new(
            "topic",
            format!(
                "topic is {} bytes long, the limit is {MAX_TOPIC_BYTES}",
                t.len()
            ),
            TOPIC_HINT,
        ));
    }
    let first = t.as_bytes()[0];
    if !first.is_ascii_alphanumeric() {
        return Err(Invalid::new(
            "topic",
            "topic must start with a letter or digit",
            TOPIC_HINT,
        ));
    }
    if let Some(bad) = t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Invalid::new(
            "topic",
            format!("topic contains {bad:?}, which is not allowed"),
            TOPIC_HINT,
        ));
    }
    Ok(())
}

/// Keys are optional; when given they must be non-empty (NULL means "no
/// order") and short.
pub fn key(k: &str) -> Result<(), Invalid> {
    if k.is_empty() {
        return Err(Invalid::new(
            "key",
            "key is empty",
            "Pass NULL for a message without per-key ordering, or a non-empty key.",
        ));
    }
    if k.len() > MAX_KEY_BYTES {
        return Err(Invalid::new(
            "key",
            format!(
                "key is {} bytes long, the limit is {MAX_KEY_BYTES}",
                k.len()
            ),
            "Use a short identifier (an aggregate id) as the key, not data.",
        ));
    }
    // Keys travel as broker headers (NATS, HTTP), where a line break or
    // another control character cannot be carried: refused here rather than
    // dead-lettered by the relay later.
    if let Some(bad) = k.chars().find(|c| c.is_control()) {
        return Err(Invalid::new(
            "key",
            format!("key contains the control character {bad:?}"),
            "Use printable characters in keys, e.g. 'order-42'.",
        ));
    }
    Ok(())
}

/// A dedup key names one logical event ('order-42-created'): NULL means "no
/// deduplication", so an empty one is a mistake, and it is an index key,
/// not data. Unlike message keys it never travels to a broker, so any
/// character is allowed.
pub fn dedup_key(k: &str) -> Result<(), Invalid> {
    if k.is_empty() {
        return Err(Invalid::new(
            "dedup_key",
            "dedup_key is empty",
            "Pass NULL to enqueue without deduplication, or a non-empty key naming the event, e.g. 'order-42-created'.",
        ));
    }
    if k.len() > MAX_DEDUP_KEY_BYTES {
        return Err(Invalid::new(
            "dedup_key",
            format!(
                "dedup_key is {} bytes long, the limit is {MAX_DEDUP_KEY_BYTES}",
                k.len()
            ),
            "Use a short name for the event (its aggregate id and kind), not data; hash anything longer.",
        ));
    }
    Ok(())
}

/// HTTP's token characters (RFC 9110 `tchar`): what a header name may be made
/// of on every broker (NATS also forbids `:` and spaces; tchar has neither).
fn is_header_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The owner names the relay holding a lease, for operators.
pub fn owner(o: &str) -> Result<(), Invalid> {
    if o.trim().is_empty() {
        return Err(Invalid::new(
            "owner",
            "owner is empty",
            "Pass a name that identifies this relay process, e.g. 'host-1:4242'.",
        ));
    }
    if o.len() > MAX_OWNER_BYTES {
        return Err(Invalid::new(
            "owner",
            format!(
                "owner is {} bytes long, the limit is {MAX_OWNER_BYTES}",
                o.len()
            ),
            "Pass a short name that identifies this relay process.",
        ));
    }
    Ok(())
}

const HEADERS_HINT: &str =
    "Headers are a JSON object of string values, e.g. '{\"trace-id\": \"abc\"}', or NULL.";

/// Headers travel to brokers as message headers, which are string to string
/// maps everywhere (Kafka, NATS, HTTP), so that is what we accept.
pub fn headers(h: &Value, stored_bytes: usize) -> Result<(), Invalid> {
    let Value::Object(map) = h else {
        return Err(Invalid::new(
            "headers",
            "headers must be a JSON object",
            HEADERS_HINT,
        ));
    };
    if map.len() > MAX_HEADERS {
        return Err(Invalid::new(
            "headers",
            format!(
                "headers has {} entries, the limit is {MAX_HEADERS}",
                map.len()
            ),
            HEADERS_HINT,
        ));
    }
    if stored_bytes > MAX_HEADERS_BYTES {
        return Err(Invalid::new(
            "headers",
            format!("headers take {stored_bytes} bytes, the limit is {MAX_HEADERS_BYTES}"),
            HEADERS_HINT,
        ));
    }
    for (name, value) in map {
        if name.is_empty() || name.len() > MAX_HEADER_NAME_BYTES {
            return Err(Invalid::new(
                "headers",
                format!("header name must be 1 to {MAX_HEADER_NAME_BYTES} bytes long"),
                HEADERS_HINT,
            ));
        }
        if !name.chars().all(is_header_name_char) {
            return Err(Invalid::new(
                "headers",
                format!("header name {name:?} has a character brokers do not allow in header names"),
                "Header names are letters, digits and !#$%&'*+-.^_`|~ (no spaces, ':' or non-ASCII), e.g. 'trace-id'.",
            ));
        }
        let Some(text) = value.as_str() else {
            return Err(Invalid::new(
                "headers",
                format!("header {name:?} is not a string"),
                HEADERS_HINT,
            ));
        };
        if text.chars().any(|c| c.is_control() && c != '\t') {
            return Err(Invalid::new(
                "headers",
                format!("header {name:?} contains a control character"),
                "Header values cannot carry line breaks or other control characters; put such data in the payload.",
            ));
        }
    }
    Ok(())
}

/// Headers that jsonb accepted but that cannot be read as JSON values here
/// (nesting deeper than 128, a number beyond f64 such as 1e400): never a
/// JSON object of strings, so they are refused like any other bad headers.
pub fn headers_unreadable(why: String) -> Invalid {
    Invalid::new(
        "headers",
        format!("headers must be a JSON object of string values ({why})"),
        HEADERS_HINT,
    )
}

/// The topic filter for claim: NULL (all topics) or a non-empty list of
/// valid topics.
pub fn topics<'a>(list: impl ExactSizeIterator<Item = Option<&'a str>>) -> Result<(), Invalid> {
    if list.len() == 0 {
        return Err(Invalid::new(
            "topics",
            "topics is an empty array",
            "Pass NULL to claim from every topic, or the topics to claim from.",
        ));
    }
    for t in list {
        match t {
            None => {
                return Err(Invalid::new(
                    "topics",
                    "topics contains NULL",
                    "Remove the NULL element.",
                ))
            }
            Some(t) => topic(t).map_err(|e| Invalid {
                param: "topics",
                reason: format!("topics element {t:?}: {}", e.reason),
                ..e
            })?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[test]
    fn topic_cases() {
        let long = "a".repeat(MAX_TOPIC_BYTES);
        let too_long = "a".repeat(MAX_TOPIC_BYTES + 1);
        let cases: &[(&str, bool)] = &[
            ("orders", true),
            ("orders.created", true),
            ("Orders_v2-eu", true),
            ("0day", true),
            (&long, true),
            ("", false),
            (&too_long, false),
            (".hidden", false),
            ("-x", false),
            ("orders created", false),
            ("orders/created", false),
            ("ordérs", false),
            ("a*", false),
        ];
        for (t, ok) in cases {
            assert_eq!(topic(t).is_ok(), *ok, "topic {t:?}");
        }
    }
    #[test]
    fn key_cases() {
        assert!(key("order-1").is_ok());
        assert!(key("").is_err());
        assert!(dedup_key("order-42-created").is_ok());
        assert!(dedup_key("").is_err());
        assert!(dedup_key(&"x".repeat(MAX_DEDUP_KEY_BYTES + 1)).is_err());
        assert!(key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(key("ordér 42 🙂").is_ok());
        assert!(key("a\nb").is_err());
        assert!(key("a\u{0}b").is_err());
        assert!(key("a\u{85}b").is_err());
    }
    #[test]
    fn owner_cases() {
        assert!(owner("relay-1").is_ok());
        assert!(owner("").is_err());
        assert!(owner("   ").is_err());
        assert!(owner(&"o".repeat(MAX_OWNER_BYTES + 1)).is_err());
    }
    #[test]
    fn header_cases() {
        assert!(headers(&json!({"trace-id": "abc"}), 40).is_ok());
        assert!(headers(&json!({}), 8).is_ok());
        assert!(headers(&json!(["a"]), 8).is_err());
        assert!(headers(&json!("a"), 8).is_err());
        assert!(headers(&json!({"n": 1}), 8).is_err());
        assert!(headers(&json!({"n": null}), 8).is_err());
        assert!(headers(&json!({"": "x"}), 8).is_err());
        assert!(headers(&json!({"X-Trace_id.2": "a\tb ünï"}), 40).is_ok());
        assert!(headers(&json!({"a:b": "x"}), 8).is_err());
        assert!(headers(&json!({"a b": "x"}), 8).is_err());
        assert!(headers(&json!({"ünï": "x"}), 8).is_err());
        assert!(headers(&json!({"a": "x\r\ny: z"}), 8).is_err());
        assert!(headers(&json!({"a": "b"}), MAX_HEADERS_BYTES + 1).is_err());
        let many: serde_json::Map<String, Value> = (0..=MAX_HEADERS)
            .map(|i| (format!("h{i}"), json!("v")))
            .collect();
        assert!(headers(&Value::Object(many), 100).is_err());
    }
    #[test]
    fn topic_filter_cases() {
        assert!(topics([Some("a"), Some("b")].into_iter()).is_ok());
        assert!(topics(std::iter::empty::<Option<&str>>()).is_err());
        assert!(topics([Some("a"), None].into_iter()).is_err());
        assert_eq!(
            topics([Some("bad topic")].into_iter()).unwrap_err().param,
            "topics"
        );
    }
}
