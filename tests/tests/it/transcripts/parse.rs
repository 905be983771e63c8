//! Markdown into transcript blocks, a block into statements and the output
//! the document shows for each, and psql's real output into the same pieces.
//!
//! A transcript is an un-tagged fenced block that starts with a statement
//! (an SQL keyword or a psql meta-command at the start of a line) and shows
//! at least one line only psql prints (a command tag, `(N rows)`, `ERROR:`,
//! a table rule). Signatures, diagrams and pseudo-code have neither, so they
//! are skipped without a marker; tagged blocks (```sql, ```sh) are examples,
//! not transcripts.
//!
//! A block that cannot be replayed, or that runs as another role, says so in
//! an HTML comment on the last non-blank line before its fence:
//! `<!-- transcript: not replayed: <reason> -->`, `<!-- transcript: as <role> -->`.

/// What the marker before a block asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// Replay in a psql session of this role (`None`: the superuser).
    Replay { role: Option<String> },
    /// Not replayed, for the reason the marker gives.
    Skip(String),
}

/// One transcript block of a document.
#[derive(Debug, Clone)]
pub struct Block {
    /// 1-based line of the opening fence.
    pub line: usize,
    pub directive: Directive,
    pub steps: Vec<Step>,
}

/// One statement (or meta-command) and the output shown under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// 1-based line of the statement's first line in the document.
    pub line: usize,
    /// The statement as psql echoes it, one line per input line, each ending
    /// in `\n`.
    pub sql: String,
    pub expected: String,
}

const MARKER_PREFIX: &str = "<!-- transcript:";

/// Statement keywords a transcript line may start with. Upper case only:
/// the documents write SQL that way, and psql's output never starts a line
/// with one (command tags are recognised separately).
const KEYWORDS: &[&str] = &[
    "ALTER",
    "ANALYZE",
    "BEGIN",
    "CALL",
    "COMMIT",
    "COPY",
    "CREATE",
    "DELETE",
    "DISCARD",
    "DO",
    "DROP",
    "END",
    "EXECUTE",
    "EXPLAIN",
    "GRANT",
    "INSERT",
    "LISTEN",
    "LOAD",
    "NOTIFY",
    "PREPARE",
    "RESET",
    "REVOKE",
    "ROLLBACK",
    "SAVEPOINT",
    "SELECT",
    "SET",
    "SHOW",
    "TABLE",
    "TRUNCATE",
    "UNLISTEN",
    "UPDATE",
    "VACUUM",
    "VALUES",
    "WITH",
];

/// The transcript blocks of `markdown`, in document order; `Err` for a
/// marker that is malformed or does not sit right before a transcript.
pub fn blocks(markdown: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut out = Vec::new();
    let mut pending: Option<(usize, Directive)> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            let close = (i + 1..lines.len())
                .find(|&j| lines[j].trim() == "```")
                .ok_or_else(|| format!("line {}: code block is never closed", i + 1))?;
            let body = &lines[i + 1..close];
            let marker = pending.take();
            let steps = if info.trim().is_empty() {
                transcript_steps(body, i + 2)
            } else {
                None
            };
            match (steps, marker) {
                (Some(steps), marker) => out.push(Block {
                    line: i + 1,
                    directive: marker.map_or(Directive::Replay { role: None }, |(_, d)| d),
                    steps,
                }),
                (None, Some((at, _))) => {
                    return Err(format!(
                        "line {at}: transcript marker before a block that is not a transcript"
                    ))
                }
                (None, None) => {}
            }
            i = close + 1;
            continue;
        }
        if trimmed.starts_with(MARKER_PREFIX) {
            pending = Some((
                i + 1,
                directive(trimmed).map_err(|e| format!("line {}: {e}", i + 1))?,
            ));
        } else if !trimmed.is_empty() {
            if let Some((at, _)) = pending {
                return Err(format!(
                    "line {at}: transcript marker not followed by a code block"
                ));
            }
        }
        i += 1;
    }
    match pending {
        Some((at, _)) => Err(format!(
            "line {at}: transcript marker at the end of the document"
        )),
        None => Ok(out),
    }
}

fn directive(marker: &str) -> Result<Directive, String> {
    let inner = marker
        .strip_prefix(MARKER_PREFIX)
        .and_then(|m| m.strip_suffix("-->"))
        .ok_or("a transcript marker is one line: <!-- transcript: ... -->")?
        .trim();
    if let Some(reason) = inner.strip_prefix("not replayed:") {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err("`not replayed:` needs a reason".into());
        }
        return Ok(Directive::Skip(reason.to_owned()));
    }
    if let Some(role) = inner.strip_prefix("as ") {
        let role = role.trim();
        if !role.is_empty() && !role.contains(char::is_whitespace) {
            return Ok(Directive::Replay {
                role: Some(role.to_owned()),
            });
        }
    }
    Err(format!(
        "unknown transcript marker {inner:?}: use `not replayed: <reason>` or `as <role>`"
    ))
}

/// The steps of a block whose first line is at `first_line`, or `None` if
/// the block is not a transcript.
fn transcript_steps(body: &[&str], first_line: usize) -> Option<Vec<Step>> {
    let first = body.iter().position(|l| !l.trim().is_empty())?;
    if !starts_statement(body[first]) || !body.iter().any(|l| is_psql_output(l)) {
        return None;
    }
    let mut steps: Vec<Step> = Vec::new();
    let mut i = first;
    while i < body.len() {
        if !starts_statement(body[i]) {
            let step = steps.last_mut()?;
            step.expected.push_str(body[i]);
            step.expected.push('\n');
            i += 1;
            continue;
        }
        let start = i;
        let mut sql = String::new();
        loop {
            let line = *body.get(i)?;
            if line.trim().is_empty() {
                return None; // a statement that never ends: not psql input
            }
            sql.push_str(line);
            sql.push('\n');
            i += 1;
            if ends_statement(line) {
                break;
            }
        }
        steps.push(Step {
            line: first_line + start,
            sql,
            expected: String::new(),
        });
    }
    Some(steps)
}

fn starts_statement(line: &str) -> bool {
    if line.starts_with('\\') {
        return true;
    }
    let word: String = line.chars().take_while(char::is_ascii_alphabetic).collect();
    KEYWORDS.contains(&word.as_str()) && !is_command_tag(line)
}

/// A statement ends with `;` (before a `--` comment), a `\g...` meta-command,
/// or is itself a one-line meta-command.
fn ends_statement(line: &str) -> bool {
    let code = strip_comment(line).trim_end();
    line.starts_with('\\') || code.ends_with(';') || code.contains(" \\g")
}

/// `line` without a trailing `-- comment` (a `--` inside quotes is kept).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\'' => quoted = !quoted,
            b'-' if !quoted && bytes.get(i + 1) == Some(&b'-') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The tag psql prints after a statement without rows: `SET`, `INSERT 0 1`,
/// `CREATE ROLE`. Never ends in `;`, which tells it from the statement.
fn is_command_tag(line: &str) -> bool {
    let words: Vec<&str> = line.split(' ').collect();
    let upper = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase());
    let number = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
    match words.as_slice() {
        [w] => upper(w),
        [w, n] if number(n) => upper(w),
        ["INSERT", a, b] => number(a) && number(b),
        [a, b] => upper(a) && upper(b),
        [a, b, c] => upper(a) && upper(b) && upper(c),
        _ => false,
    }
}

/// A line that only psql's output has, so a block showing one is a
/// transcript and not SQL or pseudo-code.
fn is_psql_output(line: &str) -> bool {
    let t = line.trim();
    is_command_tag(line)
        || (t.starts_with('(') && (t.ends_with(" row)") || t.ends_with(" rows)")))
        || ["ERROR:", "WARNING:", "NOTICE:", "-[ RECORD"]
            .iter()
            .any(|p| t.starts_with(p))
        || (t.starts_with("--") && t.bytes().all(|b| b == b'-' || b == b'+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "Text.\n\n```\nSELECT 1;\n ?column? \n----------\n        1\n(1 row)\n\nSET x = 1;\nSET\nSELECT 1/0;  -- boom\nERROR:  division by zero\n```\n\n<!-- transcript: not replayed: two sessions -->\n```\nBEGIN;\nBEGIN\n```\n\n```\nouter.f(\n    a int\n) RETURNS int\n```\n\n```sql\nSELECT 2;\n```\n";

    #[test]
    fn finds_transcripts_and_their_markers() {
        let blocks = blocks(DOC).unwrap();
        assert_eq!(
            blocks.len(),
            2,
            "the signature and the ```sql block are not transcripts"
        );
        assert_eq!(blocks[0].line, 3);
        assert_eq!(blocks[0].directive, Directive::Replay { role: None });
        assert_eq!(blocks[1].directive, Directive::Skip("two sessions".into()));
        let steps = &blocks[0].steps;
        assert_eq!(steps.len(), 3);
        assert_eq!((steps[0].line, steps[0].sql.as_str()), (4, "SELECT 1;\n"));
        assert_eq!(
            steps[1].expected, "SET\n",
            "the tag SET is output, not a statement"
        );
        assert_eq!(steps[2].expected, "ERROR:  division by zero\n");
    }

    #[test]
    fn multi_line_statements_and_gset() {
        let body = [
            "SELECT a,",
            "       b FROM t \\gset",
            "\\echo :a",
            "1",
            "SELECT 1;",
            "(0 rows)",
        ];
        let steps = transcript_steps(&body, 10).unwrap();
        let sqls: Vec<&str> = steps.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sqls,
            [
                "SELECT a,\n       b FROM t \\gset\n",
                "\\echo :a\n",
                "SELECT 1;\n"
            ]
        );
        assert_eq!(steps[1].expected, "1\n");
        assert_eq!(steps[2].line, 14);
    }

    #[test]
    fn pseudo_code_is_not_a_transcript() {
        let body = ["LISTEN ch;   -- once", "loop:", "    claim"];
        assert!(transcript_steps(&body, 1).is_none());
    }

    #[test]
    fn bad_markers_are_errors() {
        assert!(blocks("<!-- transcript: maybe -->\n```\nSELECT 1;\n(1 row)\n```\n").is_err());
        assert!(blocks("<!-- transcript: as app -->\ntext\n").is_err());
        assert!(blocks("<!-- transcript: not replayed: x -->\n```sql\nSELECT 1;\n```\n").is_err());
    }
}
