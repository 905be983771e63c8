//! HTTP webhooks: POST each message as JSON, signed the Standard Webhooks
//! way, and read the status as the broker's answer.

use super::cloudevents::{Binding, CloudEvents, ContentMode, STRUCTURED_CONTENT_TYPE};
use super::{Delivery, Publisher};
use crate::{Error, Message};
use base64::Engine;
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use outbox_client::ids;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Concurrent requests per batch (a batch holds at most one message per key).
const IN_FLIGHT: usize = 16;

/// Settings of [`HttpPublisher`]. Each field's doc ends with its default.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where to POST. Default: none, required.
    pub url: reqwest::Url,
    /// Extra headers on every request (e.g. an API key). Default: none.
    pub headers: Vec<(String, String)>,
    /// Signing secret, raw or `whsec_<base64>` as Standard Webhooks issues
    /// them; `None` sends no signature. Default: `None`.
    pub secret: Option<String>,
    /// Per request. Default: 10 s.
    pub timeout: Duration,
    /// The envelope: the outbox's own (documented on the publisher) or a
    /// CloudEvents event ([`super::cloudevents`]). Default: the outbox's.
    pub envelope: super::Envelope,
}

impl HttpConfig {
    /// The default [`timeout`](HttpConfig::timeout).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Defaults for `url`.
    pub fn new(url: reqwest::Url) -> Self {
        HttpConfig {
            url,
            headers: Vec::new(),
            secret: None,
            timeout: Self::DEFAULT_TIMEOUT,
            envelope: super::Envelope::Outbox,
        }
    }
}

/// POSTs each message (the same JSON object the stdout publisher prints) to
/// one URL with the headers `webhook-id` (the outbox id), `webhook-timestamp`,
/// `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`),
/// `outbox-topic`, `outbox-key` and the W3C `traceparent`/`tracestate` of
/// the message's headers (when valid), and its `tenant-id`,
/// `correlation-id` and `causation-id`.
///
/// With a CloudEvents envelope the body is the event instead: in binary mode
/// (the default) the payload itself with the attributes as `ce-*` headers
/// (percent-encoded, as the HTTP binding says), in structured mode the JSON
/// event format with `Content-Type: application/cloudevents+json`. The
/// `webhook-*` headers and the signature (over the body sent) stay.
///
/// 2xx is delivered; 408, 429 and 5xx, timeouts and connection errors are
/// retryable (honouring `Retry-After`); any other status is permanent (the
/// message is dead-lettered with the status and the start of the body). So
/// is a message no request can carry (a key with a line break, which no
/// HTTP header may hold): dead-lettered as `undeliverable: ...`.
#[derive(Debug, Clone)]
pub struct HttpPublisher {
    client: reqwest::Client,
    url: reqwest::Url,
    key: Option<Vec<u8>>,
    events: Option<(CloudEvents, ContentMode)>,
}

impl HttpPublisher {
    /// Check the settings and build the HTTP client.
    pub fn new(config: HttpConfig) -> Result<Self, Error> {
        if !matches!(config.url.scheme(), "http" | "https") {
            return Err(Error::Config {
                field: "http url",
                reason: "must be an http:// or https:// URL".into(),
            });
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in &config.headers {
            let name = HeaderName::try_from(name.as_str()).map_err(|e| Error::Config {
                field: "http header",
                reason: format!("{name:?}: {e}"),
            })?;
            let value = HeaderValue::try_from(value.as_str()).map_err(|e| Error::Config {
                field: "http header",
                reason: format!("{name}: {e}"),
            })?;
            headers.insert(name, value);
        }
        let key = config.secret.as_deref().map(signing_key).transpose()?;
        let events = config.envelope.for_binding(Binding::Http)?;
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .build()
            .map_err(|e| Error::Config {
                field: "http",
                reason: e.to_string(),
            })?;
        Ok(HttpPublisher {
            client,
            url: config.url,
            key,
            events,
        })
    }

    async fn send(&self, message: &Message) -> Delivery {
        let body = match &self.events {
            None => match serde_json::to_vec(message) {
                Ok(body) => body,
                Err(e) => {
                    return Delivery::Permanent {
                        error: format!(
                            "undeliverable: HTTP: cannot serialize the message as JSON: {e}"
                        ),
                    }
                }
            },
            Some((events, ContentMode::Structured)) => events.structured(message),
            Some((_, ContentMode::Binary)) => message.payload.get().as_bytes().to_vec(),
        };
        let id = message.id.to_string();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string();
        let mut request = self
            .client
            .post(self.url.clone())
            .header("webhook-id", &id)
            .header("webhook-timestamp", &timestamp)
            .header("outbox-topic", &message.topic);
        if let Some(key) = &message.key {
            request = request.header("outbox-key", key);
        }
        for (name, value) in crate::trace::trace_headers(message) {
            request = request.header(name, value);
        }
        // The id convention (outbox_client::ids) as request headers too, when
        // HTTP can carry the value (else the body's `headers` still has it).
        for name in [ids::TENANT_ID, ids::CORRELATION_ID, ids::CAUSATION_ID] {
            if let Some(value) = message
                .header(name)
                .filter(|v| HeaderValue::from_str(v).is_ok())
            {
                request = request.header(name, value);
            }
        }
        match &self.events {
            None => {}
            Some((_, ContentMode::Structured)) => {
                request = request.header(CONTENT_TYPE, STRUCTURED_CONTENT_TYPE);
            }
            // The content type stays application/json: datacontenttype.
            Some((events, ContentMode::Binary)) => {
                for (name, value) in events.binary_headers(message, Binding::Http) {
                    request = request.header(name, value);
                }
            }
        }
        if let Some(secret) = &self.key {
            request = request.header("webhook-signature", sign(secret, &id, &timestamp, &body));
        }
        match request.body(body).send().await {
            Ok(response) => classify(response).await,
            // The request could not even be built from this message (a
            // header value reqwest refuses): retrying changes nothing.
            Err(e) if e.is_builder() => Delivery::Permanent {
                error: format!("undeliverable: HTTP: {}", chain(&e)),
            },
            Err(e) => Delivery::Retryable {
                error: format!("POST {}: {}", self.url, chain(&e)),
                retry_after: None,
            },
        }
    }
}

impl Publisher for HttpPublisher {
    fn system(&self) -> &'static str {
        "http"
    }

    async fn publish(&self, batch: &[Message]) -> Vec<Delivery> {
        // Collected first: a closure in `.map()` trips a higher-ranked
        // lifetime limitation of Send futures.
        let sends: Vec<_> = batch.iter().map(|m| self.send(m)).collect();
        futures_util::stream::iter(sends)
            .buffered(IN_FLIGHT)
            .collect()
            .await
    }
}

async fn classify(response: reqwest::Response) -> Delivery {
    let status = response.status();
    if status.is_success() {
        return Delivery::Acked;
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = response.text().await.unwrap_or_default();
    let snippet: String = body.chars().take(200).collect();
    let error = format!("HTTP {status}: {snippet}");
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Delivery::Retryable { error, retry_after }
    } else {
        Delivery::Permanent { error }
    }
}

/// `Retry-After` is either seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The bytes of a Standard Webhooks secret (`whsec_` + base64) or a raw one.
fn signing_key(secret: &str) -> Result<Vec<u8>, Error> {
    if secret.is_empty() {
        return Err(Error::Config {
            field: "http secret",
            reason: "is empty".into(),
        });
    }
    match secret.strip_prefix("whsec_") {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| Error::Config {
                field: "http secret",
                reason: format!("whsec_ secret is not base64: {e}"),
            }),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
pub(crate) fn sign(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// An error with its causes ("error sending request: connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example from the Standard Webhooks specification.
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn bad_settings_are_config_errors() {
        let url = reqwest::Url::parse("ftp://example.test/").unwrap();
        assert!(matches!(
            HttpPublisher::new(HttpConfig::new(url)),
            Err(Error::Config { .. })
        ));
        assert!(signing_key("whsec_***").is_err());
        assert!(signing_key("").is_err());
    }
}
