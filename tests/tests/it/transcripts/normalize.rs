//! What may differ between a document's transcript and a real run, and
//! nothing else: lease tokens (mapped, not ignored), timestamps, fractional
//! intervals (ages and `now()` differences), backend pids, `\timing` lines,
//! and psql's column widths. Ids, counts, states, whole-second intervals,
//! messages, hints and row counts stay as they are and are compared exactly.

use std::collections::HashMap;

/// The lease tokens of one document: which real token each one the document
/// shows stands for, and a stable label per real token.
#[derive(Debug, Default)]
pub struct Tokens {
    doc_to_real: HashMap<String, String>,
    labels: HashMap<String, usize>,
}

impl Tokens {
    /// `sql` with every document token already seen replaced by its real one,
    /// so later statements pass back the tokens this run got.
    pub fn to_real(&self, sql: &str) -> String {
        replace_uuids(sql, |u| {
            self.doc_to_real
                .get(u)
                .cloned()
                .unwrap_or_else(|| u.to_owned())
        })
    }

    /// Pairs the tokens of a step's expected and actual output, in order of
    /// appearance: a document token seen for the first time stands for the
    /// real token at the same place.
    pub fn learn(&mut self, expected: &str, actual: &str) {
        let real_known: Vec<String> = self.doc_to_real.values().cloned().collect();
        for (doc, real) in uuids(expected).into_iter().zip(uuids(actual)) {
            if !self.doc_to_real.contains_key(&doc) && !real_known.contains(&real) {
                self.doc_to_real.insert(doc, real);
            }
        }
    }

    /// `text` with every token as `<token N>`, N counting the real tokens of
    /// the document in order of appearance; `expected` is translated first,
    /// so a document token matches only the real token it stands for.
    pub fn label(&mut self, text: &str, expected: bool) -> String {
        replace_uuids(text, |u| {
            let real = match expected {
                true => self.doc_to_real.get(u).map_or(u, String::as_str),
                false => u,
            };
            let next = self.labels.len() + 1;
            let n = *self.labels.entry(real.to_owned()).or_insert(next);
            format!("<token {n}>")
        })
    }
}

/// Volatile values replaced, then the layout: columns separated by single
/// spaces, table rules shortened to one dash per column, blank lines gone.
pub fn normalize(text: &str) -> String {
    let text = strip_psql_prefix(text);
    let mut out = String::new();
    for line in text.lines() {
        let line = if line.starts_with("Time: ") {
            "Time: <elapsed>".to_owned()
        } else {
            replace_pids(&replace_times(line))
        };
        let mut collapsed = collapse(&line, ' ');
        let rule = collapsed.bytes().all(|b| b"-+ ".contains(&b));
        if rule || collapsed.starts_with("-[ RECORD") {
            collapsed = collapse(&collapsed, '-');
        }
        let collapsed = collapsed.trim();
        if !collapsed.is_empty() {
            out.push_str(collapsed);
            out.push('\n');
        }
    }
    out
}

/// psql reading a file prefixes its errors with `psql:<file>:<line>: `; the
/// documents show them as read from a terminal.
fn strip_psql_prefix(text: &str) -> String {
    text.lines()
        .map(|line| {
            let rest = line.strip_prefix("psql:").and_then(|r| {
                let mut parts = r.splitn(3, ':');
                let (_file, lineno, rest) = (parts.next()?, parts.next()?, parts.next()?);
                lineno
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| rest.trim_start())
            });
            format!("{}\n", rest.unwrap_or(line))
        })
        .collect()
}

fn collapse(line: &str, c: char) -> String {
    let mut out = String::with_capacity(line.len());
    for ch in line.chars() {
        if !(ch == c && out.ends_with(c)) {
            out.push(ch);
        }
    }
    out
}

fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn uuids(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    replace_uuids(text, |u| {
        found.push(u.to_owned());
        u.to_owned()
    });
    found
}

fn replace_uuids(text: &str, mut f: impl FnMut(&str) -> String) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let window = bytes.get(i..i + 36);
        let ends_word = bytes.get(i + 36).is_none_or(|b| !b.is_ascii_alphanumeric());
        if starts_word && ends_word && window.is_some_and(is_uuid) {
            out.push_str(&f(&text[i..i + 36]));
            i += 36;
        } else {
            let ch = text[i..].chars().next().expect("i is on a char boundary");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// `2026-12-02 01:23:47.577626+00` → `<timestamp>`; `00:00:01.549742` (an
/// age, never a whole number of seconds in practice) → `<interval>`.
fn replace_times(line: &str) -> String {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < b.len() {
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if boundary && shape(b, i, "dddd-dd-dd dd:dd:dd") {
            let mut end = fraction(b, i + 19);
            if matches!(b.get(end), Some(b'+' | b'-')) && shape(b, end + 1, "dd") {
                end += 3;
                if shape(b, end, ":dd") {
                    end += 3;
                }
            }
            out.push_str("<timestamp>");
            i = end;
        } else if boundary && shape(b, i, "dd:dd:dd.d") {
            out.push_str("<interval>");
            i = fraction(b, i + 8);
        } else {
            let ch = line[i..].chars().next().expect("i is on a char boundary");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Whether `b[at..]` starts with `pattern`, `d` standing for a digit.
fn shape(b: &[u8], at: usize, pattern: &str) -> bool {
    pattern
        .bytes()
        .enumerate()
        .all(|(k, p)| match (b.get(at + k), p) {
            (Some(c), b'd') => c.is_ascii_digit(),
            (Some(c), p) => *c == p,
            (None, _) => false,
        })
}

/// The end of an optional `.digits` starting at `at`.
fn fraction(b: &[u8], at: usize) -> usize {
    if b.get(at) != Some(&b'.') {
        return at;
    }
    let mut end = at + 1;
    while b.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    end
}

/// `... from server process with PID 29629.` → `PID <pid>`.
fn replace_pids(line: &str) -> String {
    let Some(at) = line.find("PID ") else {
        return line.to_owned();
    };
    let digits = line[at + 4..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    if digits == 0 {
        return line.to_owned();
    }
    format!("{}PID <pid>{}", &line[..at], &line[at + 4 + digits..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "8792cd4f-bca7-4731-8136-dc0df1c36b18";
    const B: &str = "0b8e3f52-4b6f-4c1e-9d6a-2f1e5a7c9d10";

    #[test]
    fn tokens_map_from_the_document_to_the_run() {
        let mut t = Tokens::default();
        t.learn(
            &format!(" 1 | {A}\n 3 | {A}\n"),
            &format!(" 1 | {B}\n 3 | {B}\n"),
        );
        assert_eq!(
            t.to_real(&format!("SELECT f(1, '{A}');")),
            format!("SELECT f(1, '{B}');")
        );
        assert_eq!(t.label(&format!("x {A}"), true), "x <token 1>");
        assert_eq!(t.label(&format!("x {B}"), false), "x <token 1>");
        let other = "11111111-2222-4333-8444-555555555555";
        assert_eq!(
            t.label(other, false),
            "<token 2>",
            "an unpaired token differs"
        );
    }

    #[test]
    fn times_pids_and_widths_are_normalized() {
        let doc = "  state   |        next_attempt_at        \n----------+-------------------------------\n retrying | 2026-12-02 01:23:18.732039+00\n";
        let real = "  state   |       next_attempt_at        \n----------+------------------------------\n retrying | 2025-01-09 10:00:00.73203+00\n";
        assert_eq!(normalize(doc), normalize(real));
        assert_eq!(normalize(" 00:00:01.549742 \n"), "<interval>\n");
        assert_eq!(
            normalize(" 00:00:02 \n"),
            "00:00:02\n",
            "whole seconds are compared"
        );
        assert_eq!(
            normalize(
                "Asynchronous notification \"x\" received from server process with PID 29629.\n"
            ),
            "Asynchronous notification \"x\" received from server process with PID <pid>.\n"
        );
        assert_eq!(normalize("psql:<stdin>:3: ERROR:  boom\n"), "ERROR: boom\n");
        assert_ne!(normalize(" 12\n"), normalize(" 13\n"));
    }
}
