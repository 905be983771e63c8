//! Connection strings with libpq's TLS settings, and connecting with them.
//!
//! `tokio_postgres::Config` parses libpq URLs and key=value strings but knows
//! only `sslmode=disable|prefer|require` and refuses `sslrootcert`, `sslcert`
//! and `sslkey`. [`ConnInfo::parse`] takes those out of the string, lets
//! tokio-postgres parse the rest, and returns both halves: the
//! `tokio_postgres::Config` and a [`TlsConfig`]. [`connect`] then connects
//! with libpq's semantics over rustls (no OpenSSL):
//!
//! | `sslmode` | encrypted | server certificate checked |
//! | --- | --- | --- |
//! | `disable` | no | — |
//! | `prefer` (default) | if the server offers TLS, else plain | only against `sslrootcert` if given; a failed handshake falls back to plain, as in libpq |
//! | `require` | yes | not at all, or the chain if `sslrootcert` is given (libpq: "behaves like verify-ca") |
//! | `verify-ca` | yes | chain to `sslrootcert`, or to the system roots |
//! | `verify-full` | yes | chain, and the certificate names the host connected to |
//!
//! `sslrootcert=system` (libpq 16) means the system roots and needs
//! `verify-full`. Unlike libpq, nothing is read from `~/.postgresql/`: name
//! the files. Over unix sockets TLS never applies (libpq ignores `sslmode`
//! there too).
//!
//! ```no_run
//! # async fn demo() -> Result<(), outbox_relay::Error> {
//! use outbox_relay::ConnInfo;
//! let info: ConnInfo = "postgres://app@db.example.com/app?sslmode=verify-full".parse()?;
//! let (client, connection) = outbox_relay::connect(&info.db, &info.tls).await?;
//! tokio::spawn(connection);
//! client.query_one("SELECT 1", &[]).await?;
//! # Ok(()) }
//! ```

mod parse;
mod tls;

use crate::{error_chain, Error};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use tls::{connect, TlsConnection, TlsStream};

/// libpq's `sslmode`, minus `allow` (plain first, TLS only if refused:
/// tokio-postgres cannot do it, and it protects nothing `prefer` does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS if the server offers it, else plain text. libpq's default.
    #[default]
    Prefer,
    /// TLS or fail; the certificate is checked only against `sslrootcert`.
    Require,
    /// TLS, and the server's certificate chains to a trusted CA.
    VerifyCa,
    /// Like `VerifyCa`, and the certificate is for the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling: `disable`, `prefer`, `require`, `verify-ca`,
    /// `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: the verify modes are `require` on the
    /// wire, the checking is done by the certificate verifier.
    pub fn wire(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Wire;
        match self {
            SslMode::Disable => Wire::Disable,
            SslMode::Prefer => Wire::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Wire::Require,
        }
    }

    /// Whether a connection in this mode must be encrypted.
    pub fn requires_tls(self) -> bool {
        !matches!(self, SslMode::Disable | SslMode::Prefer)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            "allow" => Err(config(
                "sslmode",
                "allow is not supported (it tries plain text first); use prefer or disable",
            )),
            other => Err(config(
                "sslmode",
                format!(
                    "unknown sslmode {other:?}: expected disable, prefer, require, verify-ca or verify-full"
                ),
            )),
        }
    }
}

/// Which CAs a server certificate must chain to (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// `sslrootcert=system`: the operating system's store (Mozilla's roots
    /// when it is empty). Needs `verify-full`.
    System,
    /// A PEM file of one or more CA certificates.
    File(PathBuf),
}

impl RootCert {
    fn parse(s: &str) -> RootCert {
        if s == "system" {
            RootCert::System
        } else {
            RootCert::File(PathBuf::from(s))
        }
    }
}

/// How connections are secured: libpq's `sslmode`, `sslrootcert`, `sslcert`
/// and `sslkey`. Files are read on every connect (a renewed certificate is
/// picked up by the next reconnect); [`validate`](Self::validate) reads them
/// once to report a bad one early.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// Whether to encrypt and what to check. Default: [`SslMode::Prefer`],
    /// as in libpq.
    pub mode: SslMode,
    /// The CAs to trust. `None`: the system roots for `verify-ca` and
    /// `verify-full`, no check for `prefer` and `require`. Default: `None`.
    pub root_cert: Option<RootCert>,
    /// A PEM client certificate (chain) for `cert` authentication; needs
    /// [`client_key`](Self::client_key). Default: `None`.
    pub client_cert: Option<PathBuf>,
    /// The PEM private key of [`client_cert`](Self::client_cert)
    /// (unencrypted; like libpq, no group or world access unless owned by
    /// root and at most group-readable). Default: `None`.
    pub client_key: Option<PathBuf>,
}

impl TlsConfig {
    /// The settings a plain `tokio_postgres::Config` implies: its `ssl_mode`
    /// (`prefer` unless the string said `disable` or `require`), nothing else.
    pub fn from_config(db: &tokio_postgres::Config) -> TlsConfig {
        use tokio_postgres::config::SslMode as Wire;
        let mode = match db.get_ssl_mode() {
            Wire::Disable => SslMode::Disable,
            Wire::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        TlsConfig {
            mode,
            ..TlsConfig::default()
        }
    }

    /// Check the combination and read every file; the error names the
    /// setting (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`).
    pub fn validate(&self) -> Result<(), Error> {
        tls::client_config(self).map(|_| ())
    }
}

/// TLS settings given outside the connection string, as libpq spells them
/// (command-line flags, environment variables). `None` = not given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `sslmode`.
    pub sslmode: Option<String>,
    /// `sslrootcert`: a file, or `system`.
    pub sslrootcert: Option<String>,
    /// `sslcert`: a file.
    pub sslcert: Option<String>,
    /// `sslkey`: a file.
    pub sslkey: Option<String>,
}

impl TlsOptions {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "sslmode" => self.sslmode.as_deref(),
            "sslrootcert" => self.sslrootcert.as_deref(),
            "sslcert" => self.sslcert.as_deref(),
            "sslkey" => self.sslkey.as_deref(),
            _ => None,
        }
    }
}

/// A parsed connection string: where to connect, and how to secure it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Everything but TLS; its `ssl_mode` is set to
    /// [`tls.mode.wire()`](SslMode::wire).
    pub db: tokio_postgres::Config,
    /// `sslmode`, `sslrootcert`, `sslcert`, `sslkey`.
    pub tls: TlsConfig,
}

impl ConnInfo {
    /// Parse a libpq URL (`postgres://user@host:5432/db?sslmode=verify-full`)
    /// or key=value string (`host=db.example.com sslmode=require`). Files are
    /// not read here: see [`TlsConfig::validate`].
    pub fn parse(s: &str) -> Result<ConnInfo, Error> {
        ConnInfo::parse_with(s, &TlsOptions::default(), &TlsOptions::default())
    }

    /// Like [`parse`](Self::parse), with TLS settings from elsewhere:
    /// `explicit` ones (command-line flags) apply unless the string sets the
    /// same key to something else, which is an error (a `--sslmode
    /// verify-full` must not be silently undone by the URL); `fallback` ones
    /// (`PGSSLMODE`, ...) apply where neither says anything, as libpq's
    /// environment variables do.
    pub fn parse_with(
        s: &str,
        explicit: &TlsOptions,
        fallback: &TlsOptions,
    ) -> Result<ConnInfo, Error> {
        let (rest, found) = parse::split_tls(s)?;
        let mut db: tokio_postgres::Config = rest
            .parse()
            .map_err(|e| config("connection string", error_chain(&e)))?;
        let pick = |key: &'static str| -> Result<Option<String>, Error> {
            let in_string = found
                .iter()
                .rev()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone());
            match (in_string, explicit.get(key)) {
                (Some(a), Some(b)) if a != b => Err(config(
                    key,
                    format!("the connection string says {key}={a} but it is also given as {b}; set it once"),
                )),
                (Some(a), _) => Ok(Some(a)),
                (None, Some(b)) => Ok(Some(b.to_owned())),
                (None, None) => Ok(fallback.get(key).map(str::to_owned)),
            }
        };
        let mode = pick("sslmode")?;
        let root = pick("sslrootcert")?;
        let cert = pick("sslcert")?;
        let key = pick("sslkey")?;
        let tls = TlsConfig {
            mode: mode
                .as_deref()
                .map(str::parse)
                .transpose()?
                .unwrap_or_default(),
            root_cert: root.as_deref().map(RootCert::parse),
            client_cert: cert.map(PathBuf::from),
            client_key: key.map(PathBuf::from),
        };
        check_combination(&tls)?;
        db.ssl_mode(tls.mode.wire());
        Ok(ConnInfo { db, tls })
    }

    /// [`connect`] with these settings.
    pub async fn connect(&self) -> Result<(tokio_postgres::Client, TlsConnection), Error> {
        connect(&self.db, &self.tls).await
    }
}

impl FromStr for ConnInfo {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        ConnInfo::parse(s)
    }
}

/// The rules that need no file: a key needs a certificate and the other way
/// round; `sslrootcert=system` needs `verify-full`.
fn check_combination(tls: &TlsConfig) -> Result<(), Error> {
    match (&tls.client_cert, &tls.client_key) {
        (Some(_), None) => {
            return Err(config(
                "sslcert",
                "sslcert is set but sslkey is not: a client certificate needs its key",
            ))
        }
        (None, Some(_)) => {
            return Err(config(
                "sslkey",
                "sslkey is set but sslcert is not: a key is only used with its certificate",
            ))
        }
        _ => {}
    }
    if tls.root_cert == Some(RootCert::System) && tls.mode != SslMode::VerifyFull {
        return Err(config(
            "sslrootcert",
            format!(
                "sslrootcert=system needs sslmode=verify-full, not {} (any public CA would do, \
                 so the host name must be checked)",
                tls.mode
            ),
        ));
    }
    Ok(())
}

fn config(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Config {
        field,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests;
