//! Hostile argument values, per SQL type, as SQL expressions: NULLs, extreme
//! integers, extreme and mixed-sign intervals, infinite and far timestamps,
//! deeply nested and huge JSON, odd Unicode, NUL bytes, arrays with NULL
//! elements and of odd lengths, very long strings, injection attempts — and
//! a few live ids and lease tokens so calls also reach the paths past
//! validation.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A quoted SQL string literal (standard_conforming_strings is on).
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Ids and tokens of messages that exist, so some calls do real work.
#[derive(Debug, Default, Clone)]
pub struct Live {
    pub ids: Vec<i64>,
    pub tokens: Vec<String>,
    pub dead: Vec<i64>,
}

const TEXTS: &[&str] = &[
    "orders",
    "orders.created",
    "a",
    "",
    " ",
    "orders created",
    ".hidden",
    "x'); DROP TABLE outbox.messages; --",
    "$$; SELECT pg_sleep(10); $$",
    "\\",
    "\\'",
    "\"quoted\"",
    "ordérs",
    "\u{202e}gnp.exe",
    "\u{1F600}\u{0301}\u{200d}",
    "\u{FFFF}\u{FEFF}",
    "postgres://user:secret@db.example/app",
    "password=hunter2 aws_secret_access_key=AKIA/abc+def",
    "Authorization: Bearer abc.def.ghi",
    "%s%n%x",
    "NULL",
];

fn text(rng: &mut ChaCha8Rng) -> String {
    match rng.gen_range(0..10) {
        0 => "NULL::text".into(),
        1 => format!(
            "repeat('x', {})",
            [249, 250, 1024, 1025, 100_000, 3_000_000]
                .choose(rng)
                .copied()
                .unwrap_or(1)
        ),
        2 => "'a' || chr(0) || 'b'".into(),
        3 => format!("repeat({}, {})", lit("\u{1F600}"), rng.gen_range(1..400)),
        _ => lit(TEXTS.choose(rng).copied().unwrap_or("")),
    }
}

fn int(rng: &mut ChaCha8Rng, bits: u32) -> String {
    let v: i64 = match rng.gen_range(0..12) {
        0 => return "NULL".into(),
        1 => 0,
        2 => -1,
        3 => 1,
        4 => 100,
        5 => 10_000,
        6 => 10_001,
        7 => {
            if bits == 32 {
                i64::from(i32::MAX)
            } else {
                i64::MAX
            }
        }
        8 => {
            if bits == 32 {
                i64::from(i32::MIN)
            } else {
                i64::MIN
            }
        }
        9 => 1_000,
        _ => rng.gen_range(-5..50),
    };
    v.to_string()
}

const INTERVALS: &[&str] = &[
    "0",
    "1 microsecond",
    "-1 second",
    "1 second",
    "30 seconds",
    "24 hours",
    "24 hours 1 microsecond",
    "366 days",
    "367 days",
    "1 month -29 days",
    "-12 months 361 days",
    "100 years -35999 days",
    "1000 years -359700 days",
    "178000000 years",
    "-178000000 years",
    "2147483647 days",
    "-2147483648 months",
    "1 day -86399 seconds",
];

fn interval(rng: &mut ChaCha8Rng) -> String {
    match rng.gen_range(0..8) {
        0 => "NULL::interval".into(),
        _ => format!(
            "{}::interval",
            lit(INTERVALS.choose(rng).copied().unwrap_or("0"))
        ),
    }
}

fn timestamptz(rng: &mut ChaCha8Rng) -> String {
    let exprs = [
        "NULL::timestamptz",
        "'infinity'::timestamptz",
        "'-infinity'::timestamptz",
        "now()",
        "now() + interval '10 minutes'",
        "now() + interval '366 days'",
        "now() + interval '2 years'",
        "now() - interval '100 years'",
        "'4713-01-01 00:00:00+00 BC'::timestamptz",
        "'294276-12-31 23:59:59+00'::timestamptz",
    ];
    exprs.choose(rng).copied().unwrap_or("now()").into()
}

fn jsonb(rng: &mut ChaCha8Rng) -> String {
    match rng.gen_range(0..14) {
        0 => "NULL::jsonb".into(),
        1 => "'{}'::jsonb".into(),
        2 => "'[]'::jsonb".into(),
        3 => "'1e400'::jsonb".into(),
        4 => "'{\"h\": 1e400}'::jsonb".into(),
        5 => {
            let depth = [129, 300, 5_000].choose(rng).copied().unwrap_or(300);
            format!("(repeat('[', {depth}) || repeat(']', {depth}))::jsonb")
        }
        6 => "jsonb_build_object('h', (repeat('[', 300) || repeat(']', 300))::jsonb)".into(),
        7 => "jsonb_build_object('blob', repeat('x', 2000000))".into(),
        8 => "'{\"trace-id\": \"abc\"}'::jsonb".into(),
        9 => "'\"\\ud83d\\ude00\"'::jsonb".into(),
        10 => "(SELECT jsonb_object_agg('h' || i, 'v') FROM generate_series(1, 65) AS i)".into(),
        11 => "jsonb_build_object(repeat('n', 300), 'v')".into(),
        12 => "'null'::jsonb".into(),
        _ => "'{\"order_id\": 42}'::jsonb".into(),
    }
}

/// `small` is a short element for the 10,001-element array (a huge element
/// repeated that often would only test PostgreSQL's 1 GB allocation limit).
fn array(
    rng: &mut ChaCha8Rng,
    elem: &dyn Fn(&mut ChaCha8Rng) -> String,
    ty: &str,
    small: &str,
) -> String {
    match rng.gen_range(0..8) {
        0 => format!("NULL::{ty}[]"),
        1 => format!("'{{}}'::{ty}[]"),
        2 => format!("ARRAY[NULL]::{ty}[]"),
        3 => format!(
            "array_fill({small}::{ty}, ARRAY[{}])",
            [10_000, 10_001].choose(rng).copied().unwrap_or(1)
        ),
        _ => {
            let n = rng.gen_range(1..5);
            let items: Vec<String> = (0..n).map(|_| elem(rng)).collect();
            format!("ARRAY[{}]::{ty}[]", items.join(", "))
        }
    }
}

fn id(rng: &mut ChaCha8Rng, live: &Live) -> String {
    let pool = if rng.gen_bool(0.5) {
        &live.ids
    } else {
        &live.dead
    };
    match pool.choose(rng) {
        Some(id) if rng.gen_bool(0.6) => id.to_string(),
        _ => int(rng, 64),
    }
}

fn uuid(rng: &mut ChaCha8Rng, live: &Live) -> String {
    match rng.gen_range(0..6) {
        0 => "NULL::uuid".into(),
        1 => "'00000000-0000-0000-0000-000000000000'::uuid".into(),
        2 => "gen_random_uuid()".into(),
        _ => live
            .tokens
            .choose(rng)
            .map(|t| format!("{}::uuid", lit(t)))
            .unwrap_or_else(|| "gen_random_uuid()".into()),
    }
}

/// A hostile value of SQL type `ty`, or `None` if there is no generator for
/// it (the suite then fails: a new function type must get one).
pub fn value(ty: &str, rng: &mut ChaCha8Rng, live: &Live) -> Option<String> {
    Some(match ty {
        "text" => text(rng),
        // A schema name (named outboxes' internals): texts, and the schemas
        // that exist, where a careless internal would write.
        "name" => match rng.gen_range(0..4) {
            0 => "'outbox'::name".into(),
            1 => "'public'::name".into(),
            _ => format!("({})::name", text(rng)),
        },
        "integer" => int(rng, 32),
        // outbox._message_unfinished(): a log partition, owner only.
        "smallint" => [
            "NULL::smallint",
            "0::smallint",
            "-1::smallint",
            "15::smallint",
            "1023::smallint",
            "32767::smallint",
        ]
        .choose(rng)?
        .to_string(),
        "bigint" => id(rng, live),
        "boolean" => ["NULL::boolean", "true", "false"].choose(rng)?.to_string(),
        "interval" => interval(rng),
        "timestamp with time zone" => timestamptz(rng),
        "jsonb" => jsonb(rng),
        "uuid" => uuid(rng, live),
        "regrole" => [
            "NULL::regrole",
            "'fuzz_role'::regrole",
            "'postgres'::regrole",
            "'pg_monitor'::regrole",
        ]
        .choose(rng)?
        .to_string(),
        // outbox._window_snapshot(): windows' snapshots, owner only.
        "pg_snapshot" => [
            "NULL::pg_snapshot",
            "pg_current_snapshot()",
            "'1:1:'::pg_snapshot",
            "'10:20:10,15'::pg_snapshot",
            "'9223372036854775000:9223372036854775807:'::pg_snapshot",
        ]
        .choose(rng)?
        .to_string(),
        "text[]" => array(rng, &text, "text", "'a'"),
        "jsonb[]" => array(rng, &jsonb, "jsonb", "'1'"),
        "bigint[]" => {
            let live = live.clone();
            array(rng, &move |r: &mut ChaCha8Rng| id(r, &live), "bigint", "1")
        }
        _ => return None,
    })
}
