//! The client's one error type. SQLSTATEs from the extension are classified
//! in one place ([`Error::from_db`]) into variants a caller can match on.

use tokio_postgres::error::SqlState;

/// Everything the client can fail with.
///
/// ```
/// use outbox_client::Error;
/// fn should_retry(e: &Error) -> bool {
///     e.is_transient()
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument the extension rejected (SQLSTATE 22023, 22004, 2202E):
    /// bad topic, key, headers, batch size, lease, ...
    #[error("invalid input: {message} {}", said(.sqlstate, .hint))]
    InvalidInput {
        /// The extension's message, e.g. `topic is empty`.
        message: String,
        /// What to do instead.
        hint: Option<String>,
        /// The server's SQLSTATE, or for a rule the client checks before
        /// sending, the one the extension would answer with.
        sqlstate: &'static str,
    },
    /// The payload is larger than `outbox.max_payload_bytes`, or a batch
    /// is too long (SQLSTATE 54000).
    #[error("payload too large: {message} {}", said("54000", .hint))]
    PayloadTooLarge {
        /// The extension's message, with the size and the limit.
        message: String,
        /// What to do instead.
        hint: Option<String>,
    },
    /// An id that was never a message (SQLSTATE P0002).
    #[error("unknown message: {message} {}", said("P0002", .hint))]
    UnknownMessage {
        /// The extension's message.
        message: String,
        /// What to do instead.
        hint: Option<String>,
    },
    /// The `outbox` extension is not installed in this database.
    #[error("the outbox extension is missing: run CREATE EXTENSION outbox (as a superuser) in this database")]
    ExtensionMissing,
    /// A named outbox that was never created, or was dropped: its schema
    /// `outbox_<name>` is missing (SQLSTATE 3F000 on the first call).
    #[error("the outbox {name:?} does not exist (there is no schema outbox_{name}): create it with SELECT outbox.create_outbox('{name}') as the extension's owner, or fix the outbox name")]
    OutboxMissing {
        /// The outbox's name, without the `outbox_` prefix.
        name: String,
    },
    /// This role may not call the function (SQLSTATE 42501; grant it with
    /// outbox.grant_producer / grant_relay).
    #[error("permission denied: {message} {} (see outbox.grant_producer / outbox.grant_relay)", said("42501", .hint))]
    PermissionDenied {
        /// PostgreSQL's message.
        message: String,
        /// PostgreSQL's hint, if it gave one.
        hint: Option<String>,
    },
    /// A value could not be turned into JSON.
    #[error("payload is not serializable as JSON: {0}")]
    Serialize(#[from] serde_json::Error),
    /// A configuration value is wrong.
    #[error("invalid configuration: {field}: {reason}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A broker could not be reached or refused the connection at start.
    #[error("cannot reach {broker}: {message}")]
    Broker {
        /// Which broker.
        broker: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Any other database error (connection lost, server shutting down, ...).
    /// Displayed with what the server said (message, SQLSTATE, detail,
    /// hint) or, without a server answer, the whole cause chain —
    /// tokio-postgres' own display is only "db error".
    #[error("database error: {}", describe(.0))]
    Db(#[source] tokio_postgres::Error),
}

/// What a database error says, for logs and exit messages.
fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return error_chain(e);
    };
    let mut s = format!(
        "{}: {} (SQLSTATE {})",
        db.severity(),
        db.message(),
        db.code().code()
    );
    if let Some(detail) = db.detail() {
        s.push_str("; detail: ");
        s.push_str(detail);
    }
    if let Some(hint) = db.hint() {
        s.push_str("; hint: ");
        s.push_str(hint);
    }
    s
}

/// `(SQLSTATE 22023; hint: ...)`: the part of a classified error that
/// says what the server answered, so a log line carries the code and the
/// advice and not only the message.
fn said(sqlstate: &str, hint: &Option<String>) -> String {
    match hint {
        Some(hint) => format!("(SQLSTATE {sqlstate}; hint: {hint})"),
        None => format!("(SQLSTATE {sqlstate})"),
    }
}

/// A rule of `outbox_rules` the client checks before sending: the same
/// message and hint the extension would answer with.
impl From<outbox_rules::Invalid> for Error {
    fn from(e: outbox_rules::Invalid) -> Self {
        Error::InvalidInput {
            message: e.reason,
            hint: Some(e.hint.to_owned()),
            sqlstate: "22023",
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::from_db(e)
    }
}

impl Error {
    /// Classify a database error by its SQLSTATE.
    pub fn from_db(e: tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            return Error::Db(e);
        };
        let message = db.message().to_owned();
        let hint = db.hint().map(str::to_owned);
        let code = db.code();
        let invalid = [
            (SqlState::INVALID_PARAMETER_VALUE, "22023"),
            (SqlState::NULL_VALUE_NOT_ALLOWED, "22004"),
            (SqlState::ARRAY_ELEMENT_ERROR, "2202E"),
        ];
        if let Some((_, sqlstate)) = invalid.iter().find(|(c, _)| c == code) {
            Error::InvalidInput {
                message,
                hint,
                sqlstate,
            }
        } else if *code == SqlState::PROGRAM_LIMIT_EXCEEDED {
            Error::PayloadTooLarge { message, hint }
        } else if *code == SqlState::NO_DATA_FOUND {
            Error::UnknownMessage { message, hint }
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            Error::PermissionDenied { message, hint }
        } else if (*code == SqlState::UNDEFINED_FUNCTION
            || *code == SqlState::INVALID_SCHEMA_NAME
            || *code == SqlState::UNDEFINED_TABLE)
            && message.contains("outbox")
        {
            match missing_outbox(&message) {
                Some(name) => Error::OutboxMissing { name },
                None => Error::ExtensionMissing,
            }
        } else {
            Error::Db(e)
        }
    }

    /// Whether trying again later may succeed: lost connections, a server
    /// that is restarting, serialization failures. The relay reconnects on
    /// these and stops on the rest.
    pub fn is_transient(&self) -> bool {
        let Error::Db(e) = self else {
            return false;
        };
        match e.code() {
            None => true, // I/O, closed connection, timeouts
            Some(code) => {
                let class = &code.code()[..2];
                // 08: connection exception, 57: operator intervention (admin
                // shutdown, crash shutdown, cannot connect now), 53:
                // insufficient resources, 40: transaction rollback.
                matches!(class, "08" | "57" | "53" | "40")
            }
        }
    }
}

/// The named outbox a "does not exist" message is about: the name after
/// `"outbox_` (3F000: `schema "outbox_billing" does not exist`) or after a
/// word boundary (42883: `function outbox_billing.stats() does not exist`).
/// None for the default outbox's schema `outbox`: the extension is missing.
fn missing_outbox(message: &str) -> Option<String> {
    message.match_indices("outbox_").find_map(|(at, _)| {
        let before = message[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let rest = &message[at + "outbox_".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        outbox_rules::outbox_name(name)
            .is_ok()
            .then(|| name.to_owned())
    })
}

/// An error with every cause after it, `: `-separated. tokio-postgres'
/// `Display` leaves the cause out ("db error", "error performing TLS
/// handshake"); this shows the server's or rustls' message too, e.g.
/// `database error: db error: FATAL: no pg_hba.conf entry for host ...`.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        // io::Error shows its inner error and then reports that error's
        // source as its own, and a Display may already include its causes:
        // skip what is already said.
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::missing_outbox;

    #[test]
    fn a_missing_named_outbox_is_told_apart_from_a_missing_extension() {
        let named = [
            (r#"schema "outbox_billing" does not exist"#, "billing"),
            ("function outbox_b2.stats() does not exist", "b2"),
        ];
        for (message, name) in named {
            assert_eq!(missing_outbox(message).as_deref(), Some(name), "{message}");
        }
        let extension = [
            r#"schema "outbox" does not exist"#,
            "function outbox.stats() does not exist",
            r#"relation "my_outbox_table" does not exist"#,
            r#"schema "outbox_Bad" does not exist"#,
        ];
        for message in extension {
            assert_eq!(missing_outbox(message), None, "{message}");
        }
    }
}
