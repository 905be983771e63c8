//! [`ConnectionArgs`]: the command-line flags that say where the outbox is
//! and how to secure the connection, for the crate's binaries (`outbox`,
//! the operator's CLI; `outbox-relay` takes the same flags), so both read
//! connection strings, `PGSSL*` and the `--ssl*` flags by one rule.

use crate::{ConnInfo, Error, TlsOptions};
use clap::parser::ValueSource;
use clap::ArgMatches;

/// `--database-url` and the TLS flags (flatten into a binary's arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// PostgreSQL connection string: a URL (postgres://user@host:5432/db) or
    /// key=value pairs (host=/var/run/postgresql dbname=app). It may carry
    /// sslmode, sslrootcert, sslcert and sslkey as libpq does.
    #[arg(long, env = "OUTBOX_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// TLS to PostgreSQL (over TCP; unix sockets are never encrypted):
    /// disable; prefer (the default: TLS if the server offers it, not
    /// verified, else plain text); require (TLS, verified only against
    /// --sslrootcert if given); verify-ca (the certificate chains to
    /// --sslrootcert, or the system roots); verify-full (verify-ca, and the
    /// certificate names the host). A flag that contradicts the connection
    /// string is an error; PGSSL* variables only fill in what it leaves out.
    #[arg(long, env = "PGSSLMODE", value_name = "MODE")]
    pub sslmode: Option<String>,

    /// PEM file of the CA certificate(s) to trust, or "system" (the system
    /// roots; needs verify-full). Default: the system roots for verify-*.
    #[arg(long, env = "PGSSLROOTCERT", value_name = "FILE")]
    pub sslrootcert: Option<String>,

    /// PEM client certificate, for `cert` authentication (needs --sslkey).
    #[arg(long, env = "PGSSLCERT", value_name = "FILE")]
    pub sslcert: Option<String>,

    /// The client certificate's unencrypted PEM key (mode 0600).
    #[arg(long, env = "PGSSLKEY", value_name = "FILE")]
    pub sslkey: Option<String>,
}

impl ConnectionArgs {
    /// The connection string with the TLS flags laid over it: a flag typed
    /// on the command line must agree with the string, a `PGSSL*` variable
    /// only fills in what the string leaves out (libpq's rule). `matches`
    /// tells the two apart. The error names the flag.
    pub fn conninfo(&self, matches: &ArgMatches) -> Result<ConnInfo, String> {
        let (mut explicit, mut fallback) = (TlsOptions::default(), TlsOptions::default());
        let flags = [
            ("sslmode", &self.sslmode),
            ("sslrootcert", &self.sslrootcert),
            ("sslcert", &self.sslcert),
            ("sslkey", &self.sslkey),
        ];
        for (name, value) in flags {
            let from_env = find_source(matches, name) == Some(ValueSource::EnvVariable);
            let target = if from_env {
                &mut fallback
            } else {
                &mut explicit
            };
            let slot = match name {
                "sslmode" => &mut target.sslmode,
                "sslrootcert" => &mut target.sslrootcert,
                "sslcert" => &mut target.sslcert,
                _ => &mut target.sslkey,
            };
            slot.clone_from(value);
        }
        ConnInfo::parse_with(&self.database_url, &explicit, &fallback).map_err(|e| match e {
            // Name the flag the user typed, not the library's word for it.
            Error::Config {
                field: "connection string",
                reason,
            } => format!("--database-url (OUTBOX_DATABASE_URL): {reason}"),
            other => other.to_string(),
        })
    }
}

/// Where `id`'s value came from, looking into the subcommand that holds it
/// when the flags are a subcommand's.
fn find_source(matches: &ArgMatches, id: &str) -> Option<ValueSource> {
    if matches.try_contains_id(id).unwrap_or(false) {
        return matches.value_source(id);
    }
    matches
        .subcommand()
        .and_then(|(_, sub)| find_source(sub, id))
}
