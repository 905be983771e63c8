//! The relay's own statements (session setup and the doorbell); the SQL
//! API's are in `outbox_client::sql`. Fully schema-qualified: the relay runs
//! with an empty search_path (CVE-2018-1058).

/// An empty search_path (every statement is schema-qualified) and
/// asynchronous commit (a lost acknowledgement of complete/fail only means
/// a redelivery).
pub(crate) const SESSION_SETUP: &str = "SELECT pg_catalog.set_config('search_path', '', false), \
     pg_catalog.set_config('synchronous_commit', 'off', false)";

/// The doorbell's channel of the outbox in `schema` (sql/doorbell.sql):
/// the server names it, the relay LISTENs on what it says. `schema` is
/// `outbox` or a checked `outbox_<name>` ([`outbox_client::Statements`]).
pub(crate) fn channel(schema: &str) -> String {
    format!("SELECT {schema}.doorbell_channel()")
}

/// Arm the doorbell, waiting this long for producers that are committing.
pub(crate) fn arm(schema: &str) -> String {
    format!("SELECT {schema}.doorbell_arm($1::text::interval)")
}

/// Stop the rings: while armed, every producer commit rings.
pub(crate) fn disarm(schema: &str) -> String {
    format!("SELECT {schema}.doorbell_disarm()")
}
