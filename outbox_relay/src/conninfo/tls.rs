//! The rustls side: which certificates to trust and send, a verifier for
//! each `sslmode`, and [`connect`].

use super::{config, error_chain, RootCert, SslMode, TlsConfig};
use crate::Error;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The stream of a connection made by [`connect`] (TLS or plain).
pub type TlsStream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

/// The connection half returned by [`connect`]: spawn it, or poll it for
/// notifications.
pub type TlsConnection = tokio_postgres::Connection<Socket, TlsStream>;

/// Connect with `tls`'s settings (see the [module docs](super) for what each
/// `sslmode` checks). `db`'s own `ssl_mode` is ignored. Connection failures
/// keep the server's or rustls' reason in their error chain: show them with
/// [`error_chain`].
pub async fn connect(
    db: &tokio_postgres::Config,
    tls: &TlsConfig,
) -> Result<(Client, TlsConnection), Error> {
    let connector = MakeRustlsConnect::new(client_config(tls)?);
    let mut db = db.clone();
    // libpq never tries TLS over a unix socket; the server would refuse it.
    let local = db.get_hosts().iter().all(|h| !matches!(h, Host::Tcp(_)));
    let wire = if local {
        SslMode::Disable.wire()
    } else {
        tls.mode.wire()
    };
    db.ssl_mode(wire);
    match db.connect(connector.clone()).await {
        Err(e) if tls.mode == SslMode::Prefer && !local && handshake_failed(&e) => {
            // libpq's prefer also retries in plain text after a failed
            // handshake: prefer protects against eavesdroppers only when
            // nothing goes wrong.
            tracing::warn!(error = %error_chain(&e), "TLS handshake failed; sslmode=prefer retries in plain text");
            db.ssl_mode(SslMode::Disable.wire());
            Ok(db.connect(connector).await?)
        }
        other => Ok(other?),
    }
}

impl TlsConfig {
    /// A `MakeTlsConnect` with these settings, for connection pools
    /// (deadpool-postgres, bb8) that connect by themselves. Give the pool a
    /// `tokio_postgres::Config` whose `ssl_mode` is
    /// [`mode.wire()`](SslMode::wire); prefer's plain-text retry after a
    /// failed handshake is then not done.
    pub fn make_tls_connect(&self) -> Result<MakeRustlsConnect, Error> {
        Ok(MakeRustlsConnect::new(client_config(self)?))
    }
}

/// Whether `e` is rustls failing the handshake (not a refused connection or
/// a server that said no to TLS).
fn handshake_failed(e: &tokio_postgres::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .and_then(|io| io.get_ref())
        .is_some_and(|inner| inner.is::<rustls::Error>())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for `tls`: reads every file it names.
pub(super) fn client_config(tls: &TlsConfig) -> Result<ClientConfig, Error> {
    super::check_combination(tls)?;
    let provider = provider();
    let algs = provider.signature_verification_algorithms;
    let check = if tls.mode == SslMode::Disable {
        Check::Nothing
    } else {
        match trusted_roots(tls)? {
            None => Check::Nothing,
            Some(roots) if tls.mode == SslMode::VerifyFull => Check::Full(
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| config("sslrootcert", e.to_string()))?,
            ),
            Some(roots) => Check::Chain(roots),
        }
    };
    let trusted = match &tls.root_cert {
        Some(RootCert::File(p)) => format!("sslrootcert={}", p.display()),
        _ => "the system's trusted roots".to_owned(),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config("sslmode", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier {
            check,
            algs,
            trusted,
        }));
    let mut config = match (&tls.client_cert, &tls.client_key, tls.mode) {
        (Some(cert), Some(key), mode) if mode != SslMode::Disable => {
            let chain = read_certs("sslcert", cert)?;
            let key = read_key(key)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                super::config(
                    "sslkey",
                    format!("does not go with sslcert={}: {e}", cert.display()),
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    // What libpq 17 sends; PostgreSQL 17 needs it for sslnegotiation=direct.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(config)
}

/// The CAs to check the server against; `None` = check nothing
/// (`prefer`/`require` without `sslrootcert`).
fn trusted_roots(tls: &TlsConfig) -> Result<Option<Arc<RootCertStore>>, Error> {
    match (&tls.root_cert, tls.mode) {
        (Some(RootCert::File(path)), _) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs("sslrootcert", path)? {
                roots.add(cert).map_err(|e| {
                    config(
                        "sslrootcert",
                        format!(
                            "{} holds a certificate rustls cannot use as a CA: {e}",
                            path.display()
                        ),
                    )
                })?;
            }
            Ok(Some(Arc::new(roots)))
        }
        (Some(RootCert::System), _) | (None, SslMode::VerifyCa | SslMode::VerifyFull) => {
            Ok(Some(system_roots()))
        }
        (None, _) => Ok(None),
    }
}

/// The operating system's roots (read once), or Mozilla's when the OS has
/// none (a container without ca-certificates).
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::debug!(error = %e, "reading the system's CA certificates");
            }
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                tracing::info!("no CA certificates in the system store; using Mozilla's roots");
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Arc::new(roots)
        })
        .clone()
}

fn read_file(field: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| config(field, format!("cannot read {}: {e}", path.display())))
}

fn read_certs(field: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read_file(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config(field, format!("{} is not valid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(config(
            field,
            format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    check_key_permissions(path)?;
    let pem = read_file("sslkey", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        config(
            "sslkey",
            format!(
                "{} holds no usable unencrypted PEM private key: {e}",
                path.display()
            ),
        )
    })
}

/// libpq's rule: a key readable by others is refused, unless it belongs to
/// root and is at most group-readable (0640, for keys shared through a group).
fn check_key_permissions(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| config("sslkey", format!("cannot read {}: {e}", path.display())))?;
    let mode = meta.mode() & 0o777;
    let too_open = if meta.uid() == 0 {
        mode & 0o037 != 0
    } else {
        mode & 0o077 != 0
    };
    if too_open {
        return Err(config(
            "sslkey",
            format!(
                "{} has group or world access (mode {mode:04o}): chmod 0600 it \
                 (0640 allowed if owned by root), as libpq requires",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// What the server's certificate must pass.
#[derive(Debug)]
enum Check {
    /// `prefer`/`require` without `sslrootcert`: encryption only.
    Nothing,
    /// `verify-ca`, or `prefer`/`require` with `sslrootcert`: the chain.
    Chain(Arc<RootCertStore>),
    /// `verify-full`: the chain and the host name.
    Full(Arc<WebPkiServerVerifier>),
}

#[derive(Debug)]
struct Verifier {
    check: Check,
    algs: WebPkiSupportedAlgorithms,
    /// Where the trusted CAs come from, for error messages.
    trusted: String,
}

/// A rustls error with the words a person needs added.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Explained(String);

impl Verifier {
    fn explain(&self, e: rustls::Error, server_name: &ServerName<'_>) -> rustls::Error {
        let text = match &e {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                "the server's certificate is not signed by a CA in {} (UnknownIssuer)",
                self.trusted
            ),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!(
                "{e}; sslmode=verify-full requires the certificate to name the host connected to ({})",
                server_name.to_str()
            ),
            _ => return e,
        };
        rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
            Explained(text),
        ))))
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let checked = match &self.check {
            Check::Nothing => Ok(()),
            Check::Chain(roots) => ParsedCertificate::try_from(end_entity).and_then(|cert| {
                rustls::client::verify_server_cert_signed_by_trust_anchor(
                    &cert,
                    roots,
                    intermediates,
                    now,
                    self.algs.all,
                )
            }),
            Check::Full(full) => full
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ()),
        };
        checked
            .map(|()| ServerCertVerified::assertion())
            .map_err(|e| self.explain(e, server_name))
    }

    // The handshake signatures are checked in every mode: they prove the
    // server holds the key of the certificate it showed.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
