//! Taking libpq's TLS keys out of a connection string, leaving the rest for
//! tokio-postgres' own parser (which refuses them).

use super::config;
use crate::Error;

/// The keys this layer handles; tokio-postgres sees none of them.
pub(super) const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// libpq TLS keys we do not implement, each with what to do instead; left
/// to tokio-postgres they would only say "invalid connection string".
const UNSUPPORTED: [(&str, &str); 6] = [
    (
        "sslpassword",
        "encrypted client keys are not supported: decrypt the key file",
    ),
    ("sslcrl", "certificate revocation lists are not supported"),
    (
        "sslcrldir",
        "certificate revocation lists are not supported",
    ),
    (
        "sslcompression",
        "TLS compression is not supported (and insecure)",
    ),
    (
        "sslcertmode",
        "not supported: give sslcert and sslkey to send a certificate",
    ),
    ("requiressl", "use sslmode=require"),
];

/// The TLS keys found, in order, as (key, value).
pub(super) type Found = Vec<(&'static str, String)>;

/// Split `s` into the connection string without the TLS keys and the TLS
/// keys' values. URLs (`postgres://`, `postgresql://`) and key=value strings
/// are both understood, with libpq's quoting and percent-encoding.
pub(super) fn split_tls(s: &str) -> Result<(String, Found), Error> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        split_url(s)
    } else {
        split_keywords(s)
    }
}

fn tls_key(key: &str) -> Result<Option<&'static str>, Error> {
    if let Some((_, why)) = UNSUPPORTED.iter().find(|(k, _)| *k == key) {
        return Err(config("connection string", format!("{key}: {why}")));
    }
    Ok(TLS_KEYS.iter().copied().find(|k| *k == key))
}

fn split_url(s: &str) -> Result<(String, Found), Error> {
    let Some((base, query)) = s.split_once('?') else {
        return Ok((s.to_owned(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut found = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        match tls_key(&percent_decode(raw_key)?)? {
            Some(key) => found.push((key, percent_decode(raw_value)?)),
            None => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, found))
}

fn percent_decode(s: &str) -> Result<String, Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    config(
                        "connection string",
                        format!(
                            "bad percent-encoding in {s:?}: % must be followed by two hex digits"
                        ),
                    )
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        config(
            "connection string",
            format!("{s:?} does not decode to UTF-8"),
        )
    })
}

/// libpq's key=value syntax: `key = value` or `key='quoted \' value'`,
/// backslash escapes in both forms.
fn split_keywords(s: &str) -> Result<(String, Found), Error> {
    let mut chars = s.chars().peekable();
    let mut kept = Vec::new();
    let mut found = Vec::new();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(config(
                "connection string",
                format!("expected = after {key:?} (key=value pairs, or a postgres:// URL)"),
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => {
                        return Err(config(
                            "connection string",
                            format!("the quoted value of {key} is not closed with '"),
                        ))
                    }
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        match tls_key(&key)? {
            Some(tls) => found.push((tls, value)),
            None => kept.push(format!("{key}={}", quote(&value))),
        }
    }
    Ok((kept.join(" "), found))
}

/// A value quoted for tokio-postgres' key=value parser.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> (String, Vec<(&'static str, String)>) {
        split_tls(s).expect("parses")
    }

    fn reason(s: &str) -> String {
        match split_tls(s) {
            Err(Error::Config { reason, .. }) => reason,
            other => panic!("expected a config error for {s:?}, got {other:?}"),
        }
    }

    #[test]
    fn url_tls_keys_are_taken_out_and_the_rest_kept_verbatim() {
        let (rest, found) = split(
            "postgres://u:p%40ss@db.example.com:5433/app?sslmode=verify-full&connect_timeout=5\
             &sslrootcert=%2Fetc%2Fca%20x.pem&application_name=a%20b&sslcert=/c.pem&sslkey=/k.pem",
        );
        assert_eq!(
            rest,
            "postgres://u:p%40ss@db.example.com:5433/app?connect_timeout=5&application_name=a%20b"
        );
        assert_eq!(
            found,
            vec![
                ("sslmode", "verify-full".to_owned()),
                ("sslrootcert", "/etc/ca x.pem".to_owned()),
                ("sslcert", "/c.pem".to_owned()),
                ("sslkey", "/k.pem".to_owned()),
            ]
        );
    }

    #[test]
    fn url_without_other_parameters_loses_its_question_mark() {
        let (rest, found) = split("postgresql://h/db?sslmode=require");
        assert_eq!(rest, "postgresql://h/db");
        assert_eq!(found, vec![("sslmode", "require".to_owned())]);
        assert_eq!(split("postgresql://h/db").0, "postgresql://h/db");
    }

    #[test]
    fn keyword_tls_keys_are_taken_out_with_quoting_and_escapes() {
        let (rest, found) = split(
            "host=db.example.com  sslmode = verify-ca sslrootcert='/etc/my ca.pem' \
             password='it\\'s' dbname=app sslkey=/k\\ ey.pem sslcert=/c.pem",
        );
        assert_eq!(rest, "host='db.example.com' password='it\\'s' dbname='app'");
        assert_eq!(
            found,
            vec![
                ("sslmode", "verify-ca".to_owned()),
                ("sslrootcert", "/etc/my ca.pem".to_owned()),
                ("sslkey", "/k ey.pem".to_owned()),
                ("sslcert", "/c.pem".to_owned()),
            ]
        );
        let parsed: tokio_postgres::Config = rest.parse().expect("tokio-postgres reads it back");
        assert_eq!(parsed.get_password(), Some(&b"it's"[..]));
    }

    #[test]
    fn empty_and_tls_only_strings_leave_nothing() {
        assert_eq!(split(""), (String::new(), vec![]));
        assert_eq!(split("sslmode=disable").0, "");
    }

    #[test]
    fn broken_strings_say_what_is_wrong() {
        assert!(reason("host").contains("expected = after \"host\""));
        assert!(reason("sslrootcert='/unterminated").contains("not closed"));
        assert!(reason("postgres://h/db?sslrootcert=%zz").contains("percent-encoding"));
        assert!(reason("postgres://h/db?sslpassword=x").contains("decrypt the key file"));
        assert!(reason("host=h sslcrl=/crl.pem").contains("revocation"));
    }
}
