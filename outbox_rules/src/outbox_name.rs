//! The rule for a named outbox's name (`outbox.create_outbox(name)`), one
//! home for the extension and the client, which pastes the name into its
//! statements as schema `outbox_<name>`.

use crate::Invalid;

/// Longest outbox name: its schema `outbox_<name>` and doorbell channel
/// `outbox_<name>_doorbell` stay within PostgreSQL's 63-byte identifiers.
pub const MAX_OUTBOX_NAME_BYTES: usize = 40;

const HINT: &str = "An outbox name is 1 to 40 characters of a-z, 0-9 and '_', starting with a letter, e.g. 'billing'.";

/// `[a-z][a-z0-9_]{0,39}`: a lower-case identifier that needs no quoting,
/// so `outbox_<name>` can be written into SQL as it is.
///
/// ```
/// use outbox_rules::outbox_name;
/// assert!(outbox_name("billing").is_ok());
/// assert!(outbox_name("Billing").is_err());
/// assert!(outbox_name("billing; DROP TABLE x").is_err());
/// ```
pub fn outbox_name(name: &str) -> Result<(), Invalid> {
    let bad = |reason: String| Err(Invalid::new("name", reason, HINT));
    if name.is_empty() {
        return bad("outbox name is empty".into());
    }
    if name.len() > MAX_OUTBOX_NAME_BYTES {
        return bad(format!(
            "outbox name is {} bytes long, the limit is {MAX_OUTBOX_NAME_BYTES}",
            name.len()
        ));
    }
    if !name.as_bytes()[0].is_ascii_lowercase() {
        return bad("outbox name must start with a lower-case letter".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return bad(format!("outbox name contains {c:?}, which is not allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["billing", "a", "accounting_v2", &"a".repeat(40)] {
            assert!(outbox_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1billing",
            "_x",
            "Billing",
            "bill-ing",
            "bill ing",
            "bïlling",
            &"a".repeat(41),
        ] {
            assert!(outbox_name(bad).is_err(), "{bad}");
        }
    }
}
