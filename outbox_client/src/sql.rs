//! Every statement of the SQL API the client sends, fully schema-qualified
//! (the relay runs with an empty search_path, CVE-2018-1058). [`crate::call`]
//! runs each; the relay prepares them on its connections.

pub const ENQUEUE: &str =
    "SELECT outbox.enqueue($1::text, $2::jsonb, key => $3::text, headers => $4::jsonb, \
     deliver_at => $5::timestamptz, max_attempts => $6::integer)";

pub const ENQUEUE_BATCH: &str =
    "SELECT outbox.enqueue_batch($1::text, $2::jsonb[], keys => $3::text[], \
     headers => $4::jsonb[], deliver_at => $5::timestamptz, max_attempts => $6::integer)";

pub const CLAIM: &str =
    "SELECT id, topic, key, payload, headers, attempt, lease_token, lease_expires_at, created_at \
     FROM outbox.claim($1::text, $2::integer, $3::text::interval, $4::text[])";

pub const COMPLETE_BATCH: &str = "SELECT outbox.complete_batch($1::bigint[], $2::uuid)";

pub const RELEASE_BATCH: &str = "SELECT outbox.release_batch($1::bigint[], $2::uuid)";

pub const EXTEND_BATCH: &str =
    "SELECT outbox.extend_batch($1::bigint[], $2::uuid, $3::text::interval)";

pub const FAIL: &str =
    "SELECT state, next_attempt_at FROM outbox.fail($1::bigint, $2::uuid, $3::text, \
     retry_in => $4::text::interval, permanent => $5::boolean)";

pub const STATS: &str = "SELECT topic, ready, blocked, scheduled, leased, dead, \
     extract(epoch FROM oldest_ready_age)::float8 FROM outbox.stats()";

pub const EXTENSION_PRESENT: &str =
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'outbox')";
