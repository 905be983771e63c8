//! Every statement of the SQL API the client sends, with its parameters'
//! types. Fully schema-qualified: the relay runs with an empty search_path
//! (CVE-2018-1058). [`crate::call`] runs each, as an unnamed statement with
//! these types (one round trip, nothing left behind on the server
//! connection, so it works through a transaction-mode pooler) or prepared
//! once on a connection by the relay.

use tokio_postgres::types::Type;

/// A statement and the types of its parameters, in order: every parameter
/// is cast in the text too, so the types are the text's, not a guess.
#[derive(Debug)]
pub struct Sql {
    /// The statement.
    pub text: &'static str,
    /// `$1`, `$2`, ...: the types the statement casts them to.
    pub params: &'static [Type],
}

/// `outbox.enqueue()`: topic, payload, key, headers, deliver_at, max_attempts.
pub const ENQUEUE: Sql = Sql {
    text: "SELECT outbox.enqueue($1::text, $2::jsonb, key => $3::text, headers => $4::jsonb, \
           deliver_at => $5::timestamptz, max_attempts => $6::integer)",
    params: &[
        Type::TEXT,
        Type::JSONB,
        Type::TEXT,
        Type::JSONB,
        Type::TIMESTAMPTZ,
        Type::INT4,
    ],
};

/// `outbox.enqueue()` with a dedup key: [`ENQUEUE`]'s parameters, then
/// dedup_key and dedup_window (an interval as text). Only messages with a
/// dedup key use it, so the plain call stays the one every 0.x server has.
pub const ENQUEUE_DEDUP: Sql = Sql {
    text: "SELECT outbox.enqueue($1::text, $2::jsonb, key => $3::text, headers => $4::jsonb, \
           deliver_at => $5::timestamptz, max_attempts => $6::integer, dedup_key => $7::text, \
           dedup_window => $8::text::interval)",
    params: &[
        Type::TEXT,
        Type::JSONB,
        Type::TEXT,
        Type::JSONB,
        Type::TIMESTAMPTZ,
        Type::INT4,
        Type::TEXT,
        Type::TEXT,
    ],
};

/// `outbox.enqueue_batch()` with dedup keys: [`ENQUEUE_BATCH`]'s
/// parameters, then dedup_keys and dedup_window (an interval as text).
pub const ENQUEUE_BATCH_DEDUP: Sql = Sql {
    text: "SELECT outbox.enqueue_batch($1::text, $2::jsonb[], keys => $3::text[], \
           headers => $4::jsonb[], deliver_at => $5::timestamptz, max_attempts => $6::integer, \
           dedup_keys => $7::text[], dedup_window => $8::text::interval)",
    params: &[
        Type::TEXT,
        Type::JSONB_ARRAY,
        Type::TEXT_ARRAY,
        Type::JSONB_ARRAY,
        Type::TIMESTAMPTZ,
        Type::INT4,
        Type::TEXT_ARRAY,
        Type::TEXT,
    ],
};

/// `outbox.enqueue_batch()`: topic, payloads, keys, headers, deliver_at,
/// max_attempts.
pub const ENQUEUE_BATCH: Sql = Sql {
    text: "SELECT outbox.enqueue_batch($1::text, $2::jsonb[], keys => $3::text[], \
           headers => $4::jsonb[], deliver_at => $5::timestamptz, max_attempts => $6::integer)",
    params: &[
        Type::TEXT,
        Type::JSONB_ARRAY,
        Type::TEXT_ARRAY,
        Type::JSONB_ARRAY,
        Type::TIMESTAMPTZ,
        Type::INT4,
    ],
};

/// `outbox.claim()`: owner, batch size, lease (an interval as text), topics.
/// The columns are named, in the order `claimed.rs` reads them.
pub const CLAIM: Sql = Sql {
    text: "SELECT id, topic, key, payload, headers, attempt, lease_token, lease_expires_at, \
           created_at FROM outbox.claim($1::text, $2::integer, $3::text::interval, $4::text[])",
    params: &[Type::TEXT, Type::INT4, Type::TEXT, Type::TEXT_ARRAY],
};

/// `outbox.complete_batch()`: ids, lease token.
pub const COMPLETE_BATCH: Sql = Sql {
    text: "SELECT outbox.complete_batch($1::bigint[], $2::uuid)",
    params: &[Type::INT8_ARRAY, Type::UUID],
};

/// `outbox.release_batch()`: ids, lease token.
pub const RELEASE_BATCH: Sql = Sql {
    text: "SELECT outbox.release_batch($1::bigint[], $2::uuid)",
    params: &[Type::INT8_ARRAY, Type::UUID],
};

/// `outbox.extend_batch()`: ids, lease token, lease (an interval as text).
pub const EXTEND_BATCH: Sql = Sql {
    text: "SELECT outbox.extend_batch($1::bigint[], $2::uuid, $3::text::interval)",
    params: &[Type::INT8_ARRAY, Type::UUID, Type::TEXT],
};

/// `outbox.fail()`: id, lease token, error, retry_in (an interval as text),
/// permanent.
pub const FAIL: Sql = Sql {
    text: "SELECT state, next_attempt_at FROM outbox.fail($1::bigint, $2::uuid, $3::text, \
           retry_in => $4::text::interval, permanent => $5::boolean)",
    params: &[Type::INT8, Type::UUID, Type::TEXT, Type::TEXT, Type::BOOL],
};

/// `outbox.stats()`, the age in seconds (a float, not an interval, which
/// the client would have to parse).
pub const STATS: Sql = Sql {
    text: "SELECT topic, ready, blocked, scheduled, leased, dead, \
           extract(epoch FROM oldest_ready_age)::float8 FROM outbox.stats()",
    params: &[],
};

/// Whether `CREATE EXTENSION outbox` ran in this database.
pub const EXTENSION_PRESENT: Sql = Sql {
    text: "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'outbox')",
    params: &[],
};

/// The columns of `outbox.list_messages()` and `outbox.get_message()`, in
/// the order `inspect.rs` reads them; headers and payload as text.
macro_rules! listing_columns {
    () => {
        "id, topic, key, state, attempt, max_attempts, created_at, deliver_at, lease_owner, \
         lease_expires_at, last_error, finished_at, dead_reason, headers::text, payload::text"
    };
}

/// `outbox.list_messages()`: topic, state, key, after_id, max_rows,
/// tenant_id, correlation_id.
pub const LIST_MESSAGES: Sql = Sql {
    text: concat!(
        "SELECT ",
        listing_columns!(),
        " FROM outbox.list_messages($1::text, $2::text, $3::text, $4::bigint, $5::integer, \
         $6::text, $7::text)"
    ),
    params: &[
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::INT4,
        Type::TEXT,
        Type::TEXT,
    ],
};

/// `outbox.get_message()`: id.
pub const GET_MESSAGE: Sql = Sql {
    text: concat!(
        "SELECT ",
        listing_columns!(),
        " FROM outbox.get_message($1::bigint)"
    ),
    params: &[Type::INT8],
};

/// `outbox.cleanup()`: max_rows.
pub const CLEANUP: Sql = Sql {
    text: "SELECT outbox.cleanup($1::integer)",
    params: &[Type::INT4],
};
