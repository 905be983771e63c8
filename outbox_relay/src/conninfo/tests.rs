//! Parsing connection strings into a `tokio_postgres::Config` and a
//! [`TlsConfig`]; no server, no files.

use super::*;
use tokio_postgres::config::SslMode as Wire;

fn reason(s: &str) -> (&'static str, String) {
    match ConnInfo::parse(s) {
        Err(Error::Config { field, reason }) => (field, reason),
        other => panic!("expected a config error for {s:?}, got {other:?}"),
    }
}

#[test]
fn every_sslmode_parses_in_both_forms_and_sets_the_wire_mode() {
    let cases = [
        ("disable", SslMode::Disable, Wire::Disable),
        ("prefer", SslMode::Prefer, Wire::Prefer),
        ("require", SslMode::Require, Wire::Require),
        ("verify-ca", SslMode::VerifyCa, Wire::Require),
        ("verify-full", SslMode::VerifyFull, Wire::Require),
    ];
    for (text, mode, wire) in cases {
        for s in [
            format!("host=db.example.com dbname=app sslmode={text}"),
            format!("postgres://u@db.example.com/app?sslmode={text}"),
        ] {
            let info = ConnInfo::parse(&s).expect(&s);
            assert_eq!(info.tls.mode, mode, "{s}");
            assert_eq!(info.db.get_ssl_mode(), wire, "{s}");
            assert_eq!(info.db.get_dbname(), Some("app"), "{s}");
            assert_eq!(mode.as_str(), text);
        }
    }
}

#[test]
fn no_sslmode_means_prefer_as_in_libpq() {
    let info = ConnInfo::parse("postgres://u@h/db").unwrap();
    assert_eq!(info.tls, TlsConfig::default());
    assert_eq!(info.tls.mode, SslMode::Prefer);
}

#[test]
fn certificate_paths_and_system_roots_are_kept() {
    let info = ConnInfo::parse(
        "host=h sslmode=verify-full sslrootcert=system sslcert='/a b/c.pem' sslkey=/k.pem",
    )
    .unwrap();
    assert_eq!(info.tls.root_cert, Some(RootCert::System));
    assert_eq!(info.tls.client_cert, Some(PathBuf::from("/a b/c.pem")));
    assert_eq!(info.tls.client_key, Some(PathBuf::from("/k.pem")));
    let info = ConnInfo::parse("postgresql://h/db?sslrootcert=%2Fetc%2Fca.pem").unwrap();
    assert_eq!(
        info.tls.root_cert,
        Some(RootCert::File("/etc/ca.pem".into()))
    );
}

#[test]
fn bad_values_name_their_setting() {
    let cases = [
        ("host=h sslmode=VERIFY-FULL", "sslmode", "unknown sslmode"),
        ("postgres://h/db?sslmode=", "sslmode", "unknown sslmode"),
        ("host=h sslmode=allow", "sslmode", "use prefer or disable"),
        ("host=h sslkey=/k", "sslkey", "sslcert is not"),
        ("host=h sslcert=/c", "sslcert", "sslkey is not"),
        ("host=h sslrootcert=system", "sslrootcert", "verify-full"),
        (
            "host=h sslmode=verify-ca sslrootcert=system",
            "sslrootcert",
            "verify-full",
        ),
        (
            "host=h port=notaport",
            "connection string",
            "invalid connection string",
        ),
        (
            "postgres://h/db?nosuch=1",
            "connection string",
            "unknown option",
        ),
    ];
    for (s, field, says) in cases {
        let (got, why) = reason(s);
        assert_eq!(got, field, "{s}: {why}");
        assert!(why.contains(says), "{s}: {says:?} not in {why:?}");
    }
}

#[test]
fn explicit_options_must_agree_and_fallbacks_only_fill_gaps() {
    let flag = TlsOptions {
        sslmode: Some("verify-full".into()),
        sslrootcert: Some("/ca.pem".into()),
        ..TlsOptions::default()
    };
    let none = TlsOptions::default();
    let info = ConnInfo::parse_with("host=h", &flag, &none).unwrap();
    assert_eq!(info.tls.mode, SslMode::VerifyFull);
    assert_eq!(info.tls.root_cert, Some(RootCert::File("/ca.pem".into())));
    // Saying the same thing twice is fine; saying two things is not.
    ConnInfo::parse_with("host=h sslmode=verify-full", &flag, &none).unwrap();
    let err = ConnInfo::parse_with("host=h sslmode=require", &flag, &none).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Config {
                field: "sslmode",
                ..
            }
        ),
        "{err}"
    );
    // An environment default never overrides the string or a flag.
    let env = TlsOptions {
        sslmode: Some("disable".into()),
        ..TlsOptions::default()
    };
    assert_eq!(
        ConnInfo::parse_with("host=h sslmode=require", &none, &env)
            .unwrap()
            .tls
            .mode,
        SslMode::Require
    );
    assert_eq!(
        ConnInfo::parse_with("host=h", &flag, &env)
            .unwrap()
            .tls
            .mode,
        SslMode::VerifyFull
    );
    assert_eq!(
        ConnInfo::parse_with("host=h", &none, &env)
            .unwrap()
            .tls
            .mode,
        SslMode::Disable
    );
}

#[test]
fn a_plain_config_keeps_its_own_sslmode() {
    let db: tokio_postgres::Config = "host=h sslmode=disable".parse().unwrap();
    assert_eq!(TlsConfig::from_config(&db).mode, SslMode::Disable);
    let db: tokio_postgres::Config = "host=h".parse().unwrap();
    assert_eq!(TlsConfig::from_config(&db).mode, SslMode::Prefer);
}

#[test]
fn error_chain_shows_the_causes_display_leaves_out() {
    let e = "host=h port=x"
        .parse::<tokio_postgres::Config>()
        .unwrap_err();
    assert_eq!(e.to_string(), "invalid connection string");
    assert!(
        error_chain(&e).starts_with("invalid connection string: "),
        "{}",
        error_chain(&e)
    );
}
