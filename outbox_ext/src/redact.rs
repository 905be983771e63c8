//! What fail() stores as `last_error`: at most 2 KiB, with credentials masked.
//! Error texts from brokers and HTTP clients often echo connection URLs and
//! auth headers; the outbox table is readable by admins and ends up in dumps.
//! Pure Rust, no pgrx.

use regex::Regex;
use std::sync::OnceLock;

/// Longest stored error text, in bytes.
pub const MAX_ERROR_BYTES: usize = 2048;

const TRUNCATED: &str = " …[truncated]";

fn patterns() -> &'static [(Regex, &'static str)] {
    static PATTERNS: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        [
            // scheme://user:secret@host -> scheme://user:***@host. The secret
            // runs to the last `@` of the word: unescaped passwords contain
            // `/` and `@` (masking too much beats leaking the tail).
            (r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]*):\S*@", "${1}:***@"),
            // Authorization: Bearer abc / Basic abc
            (r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=\-]+", "${1} ***"),
            // password=..., secret: "...", api_key='...' (conninfo, query
            // strings, JSON, environment dumps). The keyword may end a longer
            // name (PGPASSWORD, DB_PASSWORD, aws_secret_access_key,
            // auth_token), which `\b` alone missed; quoted values honour
            // backslash escapes; an unquoted value runs to a space, `,`, `&`
            // or a closing brace or quote (not `;`: passwords contain it).
            (
                r#"(?i)([a-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key))("?\s*[=:]\s*)("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,&"'}]+)"#,
                "${1}${2}***",
            ),
        ]
        .into_iter()
        .map(|(re, rep)| (Regex::new(re).expect("redaction pattern compiles"), rep))
        .collect()
    })
}

/// Mask credentials in `text`, then cut it to [`MAX_ERROR_BYTES`] on a
/// character boundary.
///
/// ```
/// use outbox::redact::error_text;
/// assert_eq!(
///     error_text("connect nats://app:hunter2@broker:4222 failed"),
///     "connect nats://app:***@broker:4222 failed"
/// );
/// ```
pub fn error_text(text: &str) -> String {
    let mut out = text.to_owned();
    for (re, rep) in patterns() {
        if re.is_match(&out) {
            out = re.replace_all(&out, *rep).into_owned();
        }
    }
    truncate(out)
}

fn truncate(mut s: String) -> String {
    if s.len() <= MAX_ERROR_BYTES {
        return s;
    }
    let mut cut = MAX_ERROR_BYTES - TRUNCATED.len();
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str(TRUNCATED);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_url_passwords() {
        let cases = [
            (
                "postgres://app:s3cr3t@db:5432/x down",
                "postgres://app:***@db:5432/x down",
            ),
            (
                "https://u:p@example.test/hook",
                "https://u:***@example.test/hook",
            ),
            ("amqp://:onlypass@mq", "amqp://:***@mq"),
            ("http://example.test/path", "http://example.test/path"),
            ("nats://user@host", "nats://user@host"),
            ("postgres://app:sl/ash@db/x", "postgres://app:***@db/x"),
            ("postgres://app:at@sign@db/x", "postgres://app:***@db/x"),
        ];
        for (input, want) in cases {
            assert_eq!(error_text(input), want, "{input}");
        }
    }

    #[test]
    fn masks_key_value_secrets() {
        let cases = [
            (
                "host=db password=hunter2 user=app",
                "host=db password=*** user=app",
            ),
            ("PASSWORD = 'a b c' then", "PASSWORD = *** then"),
            (
                r#"{"api_key": "abc123", "n": 1}"#,
                r#"{"api_key": ***, "n": 1}"#,
            ),
            ("url?token=xyz&x=1", "url?token=***&x=1"),
            (
                "Authorization: Bearer eyJhbGciOi.abc.def",
                "Authorization: Bearer ***",
            ),
            ("no secrets here", "no secrets here"),
            // Found by the security suite: names that end in a keyword,
            // `;` inside a value, an escaped quote inside a JSON string.
            (
                "aws_secret_access_key=AKIA/x+y",
                "aws_secret_access_key=***",
            ),
            ("PGPASSWORD=p psql failed", "PGPASSWORD=*** psql failed"),
            ("auth_token=t1", "auth_token=***"),
            ("password=semi;colon", "password=***"),
            (r#"{"password":"esc\"aped"}"#, r#"{"password":***}"#),
        ];
        for (input, want) in cases {
            assert_eq!(error_text(input), want, "{input}");
        }
    }

    #[test]
    fn truncates_on_a_char_boundary() {
        let long = "é".repeat(MAX_ERROR_BYTES);
        let out = error_text(&long);
        assert!(out.len() <= MAX_ERROR_BYTES, "{}", out.len());
        assert!(out.ends_with(TRUNCATED));
        let short = "x".repeat(MAX_ERROR_BYTES);
        assert_eq!(error_text(&short), short);
    }
}
