//! A small line diff for failure messages (no diff crate is in Cargo.lock).
//!
//! Longest common subsequence over lines, printed as unified-diff hunks with
//! three lines of context. The catalog dumps are a few hundred lines, so the
//! quadratic table is a few hundred kilobytes.

/// The lines of `new` that are not in `old` (`+`) and the reverse (`-`), as
/// unified-diff hunks; empty when the two are equal.
pub fn unified(old_name: &str, old: &[String], new_name: &str, new: &[String]) -> String {
    let ops = edit_script(old, new);
    if ops.iter().all(|op| matches!(op, Op::Same(..))) {
        return String::new();
    }
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Same(..)))
        .map(|(i, _)| i)
        .collect();
    // Group changes whose context overlaps into one hunk.
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &i in &changed {
        let start = i.saturating_sub(CONTEXT);
        let end = (i + CONTEXT + 1).min(ops.len());
        match hunks.last_mut() {
            Some(last) if start <= last.1 => last.1 = end,
            _ => hunks.push((start, end)),
        }
    }
    for (start, end) in hunks {
        let (old_line, new_line) = position(&ops[..start]);
        out.push_str(&format!("@@ -{} +{} @@\n", old_line + 1, new_line + 1));
        for op in &ops[start..end] {
            match op {
                Op::Same(l) => out.push_str(&format!(" {l}\n")),
                Op::Del(l) => out.push_str(&format!("-{l}\n")),
                Op::Add(l) => out.push_str(&format!("+{l}\n")),
            }
        }
    }
    out
}

#[derive(Debug)]
enum Op<'a> {
    Same(&'a str),
    Del(&'a str),
    Add(&'a str),
}

/// Lines of old and new consumed by `ops`.
fn position(ops: &[Op<'_>]) -> (usize, usize) {
    ops.iter().fold((0, 0), |(o, n), op| match op {
        Op::Same(_) => (o + 1, n + 1),
        Op::Del(_) => (o + 1, n),
        Op::Add(_) => (o, n + 1),
    })
}

fn edit_script<'a>(old: &'a [String], new: &'a [String]) -> Vec<Op<'a>> {
    let (n, m) = (old.len(), new.len());
    // lcs[i][j]: length of the LCS of old[i..] and new[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(n.max(m));
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            ops.push(Op::Same(&old[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(Op::Del(&old[i]));
            i += 1;
        } else {
            ops.push(Op::Add(&new[j]));
            j += 1;
        }
    }
    ops
}

#[test]
fn unified_shows_changes_with_context() {
    let lines = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
    let old = lines("a b c d e f g h i j");
    let new = lines("a b c X e f g h i j k");
    let d = unified("old", &old, "new", &new);
    assert!(d.contains("-d\n+X\n"), "{d}");
    assert!(d.contains("+k\n"), "{d}");
    assert!(d.starts_with("--- old\n+++ new\n@@ -1 +1 @@\n a\n"), "{d}");
    assert_eq!(unified("old", &old, "new", &old), "");
}
