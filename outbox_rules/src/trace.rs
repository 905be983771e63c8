//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the two
//! headers a producer puts on a message so the relay's span, and the
//! consumer, join the producer's trace. The producer library checks them
//! with these rules before the round trip; the relay parses `traceparent`
//! with the same code to link its publish span.

use crate::Invalid;

/// The header carrying the trace id, parent span id and flags.
pub const TRACEPARENT: &str = "traceparent";
/// The header carrying vendor-specific trace state.
pub const TRACESTATE: &str = "tracestate";
/// Most list members `tracestate` may have (the W3C limit).
pub const MAX_TRACESTATE_MEMBERS: usize = 32;

/// A parsed `traceparent`: `version-traceid-parentid-flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id, never all zeros.
    pub trace_id: [u8; 16],
    /// The producer's span id, never all zeros.
    pub parent_id: [u8; 8],
    /// `01` = sampled.
    pub flags: u8,
}

const HINT: &str = "Pass a W3C traceparent such as 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 (lowercase hex; trace and parent ids not all zeros).";

/// Parse a `traceparent`. Version `00` must be exactly four fields; a later
/// version may append fields, which are ignored (the W3C rule for
/// forward compatibility); version `ff` is invalid.
pub fn traceparent(value: &str) -> Result<TraceParent, Invalid> {
    let bad = |why: &str| Invalid::new(TRACEPARENT, format!("traceparent {why}"), HINT);
    let mut fields = value.split('-');
    let mut next = |n: usize, what: &str| match fields.next() {
        Some(f) if f.len() == n && f.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(f)
        }
        _ => Err(bad(&format!(
            "has no valid {what} ({n} lowercase hex digits)"
        ))),
    };
    let version = next(2, "version")?;
    if version == "ff" {
        return Err(bad("has the invalid version ff"));
    }
    let trace = next(32, "trace id")?;
    let parent = next(16, "parent id")?;
    let flags = next(2, "flags")?;
    if version == "00" && value.len() != 55 {
        return Err(bad("of version 00 must be exactly 55 characters"));
    }
    let mut trace_id = [0u8; 16];
    hex(trace, &mut trace_id);
    let mut parent_id = [0u8; 8];
    hex(parent, &mut parent_id);
    let mut flag = [0u8; 1];
    hex(flags, &mut flag);
    if trace_id == [0; 16] {
        return Err(bad("has an all-zero trace id"));
    }
    if parent_id == [0; 8] {
        return Err(bad("has an all-zero parent id"));
    }
    Ok(TraceParent {
        trace_id,
        parent_id,
        flags: flag[0],
    })
}

/// Check a `tracestate`: at most 32 comma-separated `key=value` members of
/// printable ASCII, 512 bytes in all (what every W3C implementation must
/// accept; longer values may be cut by the vendors along the way).
pub fn tracestate(value: &str) -> Result<(), Invalid> {
    let bad = |why: String| {
        Invalid::new(
            TRACESTATE,
            format!("tracestate {why}"),
            "Pass the tracestate your tracing library produced, e.g. congo=t61rcWkgMzE,rojo=00f067aa0ba902b7, or none.",
        )
    };
    if value.len() > 512 {
        return Err(bad(format!("is {} bytes, the limit is 512", value.len())));
    }
    if let Some(c) = value.chars().find(|c| !matches!(c, ' '..='~')) {
        return Err(bad(format!(
            "contains {c:?}: only printable ASCII is allowed"
        )));
    }
    let members: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    if members.len() > MAX_TRACESTATE_MEMBERS {
        return Err(bad(format!(
            "has {} members, the limit is {MAX_TRACESTATE_MEMBERS}",
            members.len()
        )));
    }
    match members.iter().find(|m| {
        !m.split_once('=')
            .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty())
    }) {
        Some(m) => Err(bad(format!("member {m:?} is not key=value"))),
        None => Ok(()),
    }
}

/// Decode lowercase hex already checked by the caller.
fn hex(digits: &str, out: &mut [u8]) {
    let nibble = |b: u8| if b >= b'a' { b - b'a' + 10 } else { b - b'0' };
    for (byte, pair) in out.iter_mut().zip(digits.as_bytes().chunks_exact(2)) {
        *byte = nibble(pair[0]) << 4 | nibble(pair[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_w3c_example_parses() {
        let t = traceparent(GOOD).unwrap();
        assert_eq!(t.trace_id[0], 0x4b);
        assert_eq!(t.trace_id[15], 0x36);
        assert_eq!(
            t.parent_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(t.flags, 1);
    }

    #[test]
    fn malformed_traceparents_are_refused_with_the_reason() {
        for (value, why) in [
            ("", "version"),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "trace id",
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "all-zero trace id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "all-zero parent id",
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "version ff",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                "exactly 55",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                "flags",
            ),
        ] {
            let e = traceparent(value).unwrap_err();
            assert!(e.reason.contains(why), "{value:?}: {}", e.reason);
            assert_eq!(e.param, TRACEPARENT);
        }
    }

    #[test]
    fn a_later_version_may_append_fields() {
        let later = format!("01{}-extra", &GOOD[2..]);
        assert!(traceparent(&later).is_ok());
    }

    #[test]
    fn tracestate_is_a_list_of_key_value_members() {
        assert!(tracestate("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7").is_ok());
        assert!(tracestate("").is_ok());
        assert!(tracestate("congo").is_err());
        assert!(tracestate("a=b\n").is_err());
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(tracestate(&many.join(",")).is_err());
        assert!(tracestate(&"a=".repeat(300)).is_err());
    }
}
