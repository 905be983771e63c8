//! TLS to PostgreSQL: `outbox_relay::connect` and the `outbox-relay` binary
//! against a private cluster with `ssl = on`, certificates made here (a CA,
//! a server certificate for `localhost` only, a client certificate, an
//! unrelated second CA), and a pg_hba.conf that refuses plain TCP.

use outbox_relay::{error_chain, ConnInfo, Error, RelayConfig, TlsOptions};
use outbox_tests::{wait_until, Cluster, ClusterOptions, RelayProcess, TestDb, SUPERUSER};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);
/// The role that logs in with its client certificate (CN = role name).
const CERT_USER: &str = "tls_cert_user";

/// The TLS cluster and the client-side files.
struct Tls {
    cluster: &'static Cluster,
    /// The CA that signed the server's and the client's certificates.
    ca: PathBuf,
    /// A CA that signed nothing of this server.
    other_ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA")
}

fn leaf(names: &[&str], cn: &str, issuer: &CertifiedIssuer<'static, KeyPair>) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("leaf certificate");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write a TLS file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

/// Started once per test binary: `ssl = on`, the server certificate names
/// only `localhost`, pg_hba.conf takes TCP only over TLS (and the client
/// certificate for [`CERT_USER`]).
fn tls() -> &'static Tls {
    static TLS: OnceLock<Tls> = OnceLock::new();
    TLS.get_or_init(|| {
        let ca = ca("outbox test CA");
        let other = ca_pem_only("unrelated CA");
        let (server_cert, server_key) = leaf(&["localhost"], "localhost", &ca);
        let (client_cert, client_key) = leaf(&[], CERT_USER, &ca);
        let cluster = Cluster::private_with(ClusterOptions {
            settings: vec![
                "ssl = on".into(),
                "ssl_cert_file = 'server.crt'".into(),
                "ssl_key_file = 'server.key'".into(),
                "ssl_ca_file = 'root.crt'".into(),
            ],
            hba: Some(format!(
                "local all all trust\n\
                 hostssl all {CERT_USER} 127.0.0.1/32 cert\n\
                 hostssl all all 127.0.0.1/32 trust\n\
                 hostnossl all all 127.0.0.1/32 reject\n"
            )),
            files: vec![
                ("server.crt".into(), server_cert.into_bytes(), 0o644),
                ("server.key".into(), server_key.into_bytes(), 0o600),
                ("root.crt".into(), ca.pem().into_bytes(), 0o644),
            ],
            ..ClusterOptions::default()
        });
        cluster.psql_ok("postgres", &format!("CREATE ROLE {CERT_USER} LOGIN;"));
        // Removed with the cluster's directory at exit.
        let dir = cluster.base_dir().join("client-tls");
        std::fs::create_dir_all(&dir).expect("client TLS dir");
        Tls {
            cluster,
            ca: write(&dir, "ca.pem", &ca.pem(), 0o644),
            other_ca: write(&dir, "other-ca.pem", &other, 0o644),
            client_cert: write(&dir, "client.pem", &client_cert, 0o644),
            client_key: write(&dir, "client.key", &client_key, 0o600),
        }
    })
}

fn ca_pem_only(name: &str) -> String {
    ca(name).pem()
}

impl Tls {
    /// key=value connection string to `host` (resolved to 127.0.0.1) plus `extra`.
    fn connstr(&self, host: &str, user: &str, extra: &str) -> String {
        format!(
            "host={host} hostaddr=127.0.0.1 port={} user={user} dbname=postgres connect_timeout=30 {extra}",
            self.cluster.port()
        )
    }
}

/// Connect with `conninfo` and return whether `pg_stat_ssl` says the session
/// is encrypted, and the session's user.
async fn session(conninfo: &str) -> Result<(bool, String), Error> {
    let info = ConnInfo::parse(conninfo)?;
    info.tls.validate()?;
    let (client, connection) = info.connect().await?;
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT ssl, current_user::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

#[track_caller]
fn refused(result: Result<(bool, String), Error>, says: &str) -> String {
    match result {
        Ok(ok) => panic!("expected a refusal saying {says:?}, connected: {ok:?}"),
        Err(e) => {
            let text = error_chain(&e);
            assert!(text.contains(says), "{says:?} not in: {text}");
            text
        }
    }
}

#[tokio::test]
async fn verify_full_with_the_right_ca_connects_encrypted() {
    let t = tls();
    let root = format!("sslrootcert={}", t.ca.display());
    let kv = t.connstr(
        "localhost",
        SUPERUSER,
        &format!("sslmode=verify-full {root}"),
    );
    assert_eq!(session(&kv).await.unwrap(), (true, SUPERUSER.to_owned()));
    let url = format!(
        "postgres://{SUPERUSER}@localhost:{}/postgres?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
        t.cluster.port(),
        t.ca.display()
    );
    assert!(session(&url).await.unwrap().0);
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let t = tls();
    for mode in ["verify-full", "verify-ca", "require"] {
        let cs = t.connstr(
            "localhost",
            SUPERUSER,
            &format!("sslmode={mode} sslrootcert={}", t.other_ca.display()),
        );
        let text = refused(session(&cs).await, "not signed by a CA in sslrootcert=");
        assert!(text.contains("TLS handshake"), "{text}");
    }
}

#[tokio::test]
async fn verify_full_refuses_a_host_name_the_certificate_lacks_and_verify_ca_accepts_it() {
    let t = tls();
    let root = format!("sslrootcert={}", t.ca.display());
    let full = t.connstr(
        "127.0.0.1",
        SUPERUSER,
        &format!("sslmode=verify-full {root}"),
    );
    let text = refused(session(&full).await, "not valid for name");
    assert!(text.contains("127.0.0.1"), "{text}");
    let ca_only = t.connstr("127.0.0.1", SUPERUSER, &format!("sslmode=verify-ca {root}"));
    assert!(session(&ca_only).await.unwrap().0);
}

#[tokio::test]
async fn require_and_prefer_encrypt_without_a_root_certificate() {
    let t = tls();
    for mode in ["require", "prefer"] {
        let cs = t.connstr("127.0.0.1", SUPERUSER, &format!("sslmode={mode}"));
        assert!(session(&cs).await.unwrap().0, "sslmode={mode}");
    }
    // No sslmode at all: prefer, as in libpq.
    let cs = t.connstr("127.0.0.1", SUPERUSER, "");
    assert!(session(&cs).await.unwrap().0);
}

#[tokio::test]
async fn a_hostssl_only_server_refuses_sslmode_disable() {
    let t = tls();
    let cs = t.connstr("localhost", SUPERUSER, "sslmode=disable");
    let text = refused(session(&cs).await, "pg_hba.conf rejects connection");
    assert!(text.contains("no encryption"), "{text}");
}

#[tokio::test]
async fn prefer_against_a_server_without_tls_connects_in_plain_text() {
    let plain = Cluster::shared();
    let cs = |mode: &str| {
        format!(
            "host=127.0.0.1 port={} user={SUPERUSER} dbname=postgres sslmode={mode}",
            plain.port()
        )
    };
    assert!(!session(&cs("prefer")).await.unwrap().0);
    refused(session(&cs("require")).await, "server does not support TLS");
}

#[tokio::test]
async fn a_client_certificate_logs_in_as_its_common_name() {
    let t = tls();
    let base = format!("sslmode=verify-full sslrootcert={}", t.ca.display());
    let with_cert = format!(
        "{base} sslcert={} sslkey={}",
        t.client_cert.display(),
        t.client_key.display()
    );
    let cs = t.connstr("localhost", CERT_USER, &with_cert);
    assert_eq!(session(&cs).await.unwrap(), (true, CERT_USER.to_owned()));
    let without = t.connstr("localhost", CERT_USER, &base);
    refused(session(&without).await, "certificate");
}

#[test]
fn bad_tls_settings_are_config_errors_naming_the_setting() {
    let field_of = |cs: &str| match ConnInfo::parse(cs).and_then(|i| i.tls.validate()) {
        Err(Error::Config { field, reason }) => (field, reason),
        other => panic!("expected a config error for {cs:?}, got {other:?}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let not_pem = write(dir.path(), "not.pem", "hello", 0o644);
    let open_key = write(
        dir.path(),
        "open.key",
        "-----BEGIN PRIVATE KEY-----\n",
        0o644,
    );
    let cert = write(dir.path(), "c.pem", &ca_pem_only("c"), 0o644);
    let cases: Vec<(String, &str, &str)> = vec![
        ("host=h sslmode=bogus".into(), "sslmode", "unknown sslmode"),
        ("host=h sslmode=allow".into(), "sslmode", "not supported"),
        ("host=h sslkey=/k.pem".into(), "sslkey", "sslcert is not"),
        ("host=h sslcert=/c.pem".into(), "sslcert", "sslkey is not"),
        (
            "host=h sslmode=require sslrootcert=system".into(),
            "sslrootcert",
            "verify-full",
        ),
        (
            format!("host=h sslmode=verify-ca sslrootcert={}", missing.display()),
            "sslrootcert",
            "cannot read",
        ),
        (
            format!("host=h sslmode=verify-ca sslrootcert={}", not_pem.display()),
            "sslrootcert",
            "no PEM certificate",
        ),
        (
            format!(
                "host=h sslmode=require sslcert={} sslkey={}",
                cert.display(),
                open_key.display()
            ),
            "sslkey",
            "group or world access",
        ),
        (
            "host=h bogus=1".into(),
            "connection string",
            "unknown option",
        ),
    ];
    for (cs, field, says) in cases {
        let (got_field, reason) = field_of(&cs);
        assert_eq!(got_field, field, "{cs}: {reason}");
        assert!(reason.contains(says), "{cs}: {says:?} not in {reason:?}");
    }

    // The relay reports a bad file when its config is validated.
    let mut relay = RelayConfig::new("host=h".parse().unwrap());
    relay.tls.root_cert = Some(outbox_relay::RootCert::File(missing));
    relay.tls.mode = outbox_relay::SslMode::VerifyFull;
    assert!(matches!(
        relay.validate(),
        Err(Error::Config {
            field: "sslrootcert",
            ..
        })
    ));
}

#[test]
fn flags_that_contradict_the_connection_string_are_refused_and_env_fills_gaps() {
    let flags = TlsOptions {
        sslmode: Some("verify-full".into()),
        ..TlsOptions::default()
    };
    let err =
        ConnInfo::parse_with("host=h sslmode=disable", &flags, &TlsOptions::default()).unwrap_err();
    assert!(error_chain(&err).contains("set it once"), "{err}");
    let env = TlsOptions {
        sslmode: Some("require".into()),
        ..TlsOptions::default()
    };
    let info =
        ConnInfo::parse_with("host=h sslmode=verify-ca", &TlsOptions::default(), &env).unwrap();
    assert_eq!(info.tls.mode, outbox_relay::SslMode::VerifyCa);
    let info = ConnInfo::parse_with("host=h", &TlsOptions::default(), &env).unwrap();
    assert_eq!(info.tls.mode, outbox_relay::SslMode::Require);
}

#[tokio::test]
async fn the_relay_binary_relays_over_verify_full() {
    let t = tls();
    let db = TestDb::in_cluster(t.cluster).await;
    let url = format!(
        "postgres://{SUPERUSER}@localhost:{}/{}?hostaddr=127.0.0.1&sslmode=verify-full",
        t.cluster.port(),
        db.name()
    );
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_addr = metrics.local_addr().unwrap().to_string();
    drop(metrics);
    let ca = t.ca.display().to_string();
    let relay = RelayProcess::spawn(&[
        "--database-url",
        &url,
        "--sslrootcert",
        &ca,
        "--poll-interval",
        "200ms",
        "--metrics-addr",
        &metrics_addr,
    ]);
    let client = db.client().await;
    client
        .batch_execute(
            "SELECT outbox.enqueue('tls.test', jsonb_build_object('n', g)) \
             FROM generate_series(1, 20) g",
        )
        .await
        .unwrap();
    wait_until(PATIENCE, || async { relay.lines().len() >= 20 }).await;
    assert_eq!(relay.lines().len(), 20, "relay log:\n{}", relay.log());
    // Two workers, the doorbell and the metrics poller: all encrypted (and
    // pg_hba.conf would refuse any that was not).
    let count = |ssl: bool| {
        let client = &client;
        let name = db.name().to_owned();
        async move {
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                     WHERE a.datname = $1 AND a.backend_type = 'client backend' \
                     AND a.pid <> pg_backend_pid() AND s.ssl = $2",
                    &[&name, &ssl],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0)
        }
    };
    wait_until(PATIENCE, || async { count(true).await >= 4 }).await;
    assert_eq!(count(false).await, 0);
    drop(relay); // killed
}

#[tokio::test]
async fn the_relay_binary_says_why_it_cannot_connect() {
    let t = tls();
    let url = format!(
        "postgres://{SUPERUSER}@localhost:{}/postgres?hostaddr=127.0.0.1",
        t.cluster.port()
    );
    let other = t.other_ca.display().to_string();
    for (args, says, code) in [
        (
            vec!["--sslmode", "verify-full", "--sslrootcert", other.as_str()],
            "not signed by a CA in sslrootcert=",
            1,
        ),
        (
            vec!["--sslmode", "disable"],
            "pg_hba.conf rejects connection",
            1,
        ),
        (vec!["--sslmode", "verify-everything"], "unknown sslmode", 2),
    ] {
        let relay =
            RelayProcess::spawn(&[&["--database-url", url.as_str()][..], &args[..]].concat());
        let (status, log) = relay.exit().await;
        assert!(log.contains(says), "{args:?}: {says:?} not in:\n{log}");
        assert_eq!(status.code(), Some(code), "{args:?}:\n{log}");
    }
}
