//! The psql transcripts of the reference docs, replayed against a fresh
//! database and compared with what the documents show, so the reference
//! cannot drift from the code.
//!
//! Each document gets one database; its transcript blocks run in document
//! order, each in a psql session of its own (see [`session`]), so ids and
//! tokens carry over from block to block as the documents say. What
//! legitimately varies is normalized in [`normalize`]; how blocks are found,
//! skipped or run as another role is in [`parse`].

mod normalize;
mod parse;
mod session;

use normalize::{normalize, Tokens};
use outbox_tests::{Cluster, TestDb};
use parse::{Block, Directive, Step};
use session::Session;
use std::path::{Path, PathBuf};

/// `psql` when the cluster's binary directory has none.
const FALLBACK_PSQL: &str = "/usr/bin/psql";

#[tokio::test]
async fn sql_api_transcripts_replay() {
    // A cluster of its own: the transcripts create app_writer, app_relay and
    // app_ops, and roles are cluster-wide (the README test creates them too).
    let db = TestDb::in_cluster(Cluster::private()).await;
    replay("docs/sql-api.md", &db).await;
}

#[tokio::test]
async fn state_machine_transcripts_replay() {
    let db = TestDb::new().await;
    replay("docs/state-machine.md", &db).await;
}

async fn replay(doc: &'static str, db: &TestDb) {
    let psql = db.cluster().pg_bin().join("psql");
    let psql = if psql.exists() {
        psql
    } else {
        FALLBACK_PSQL.into()
    };
    let connstr = db.connstr();
    // Blocking: psql sessions are driven statement by statement.
    let replayed = tokio::task::spawn_blocking(move || replay_blocking(doc, &psql, &connstr)).await;
    if let Err(e) = replayed {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn replay_blocking(doc: &str, psql: &Path, connstr: &str) {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(doc);
    let markdown =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {doc}: {e}"));
    let blocks = parse::blocks(&markdown).unwrap_or_else(|e| panic!("{doc}:{e}"));
    let mut tokens = Tokens::default();
    let mut failures = Vec::new();
    let mut skipped = 0;
    for block in &blocks {
        let role = match &block.directive {
            Directive::Skip(reason) => {
                skipped += 1;
                eprintln!("{doc}:{}: not replayed: {reason}", block.line);
                continue;
            }
            Directive::Replay { role } => role.as_deref(),
        };
        // libpq lets a later keyword override an earlier one.
        let conninfo = match role {
            Some(role) => format!("{connstr} user={role}"),
            None => connstr.to_owned(),
        };
        let mut session = Session::open(psql, &conninfo);
        for step in &block.steps {
            let actual = session.run(&tokens.to_real(&step.sql));
            tokens.learn(&step.expected, &actual);
            let want = tokens.label(&normalize(&step.expected), true);
            let got = tokens.label(&normalize(&actual), false);
            if want != got {
                failures.push(describe(doc, block, step, &want, &got, &actual));
            }
        }
    }
    let replayed = blocks.len() - skipped;
    eprintln!("{doc}: {replayed} transcript blocks replayed, {skipped} not replayed");
    assert!(
        replayed > 0,
        "{doc}: no transcript found; did the parser break?"
    );
    assert!(
        failures.is_empty(),
        "{doc}: {} statement(s) print something other than the document shows. Fix the \
         document (or the code), or mark a block that cannot be replayed with \
         `<!-- transcript: not replayed: <reason> -->` on the line before it.\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn describe(doc: &str, block: &Block, step: &Step, want: &str, got: &str, raw: &str) -> String {
    let role = match &block.directive {
        Directive::Replay { role: Some(role) } => format!(", as {role}"),
        _ => String::new(),
    };
    format!(
        "{doc}:{} (block at line {}{role})\n--- statement\n{}--- expected (normalized)\n{}\
         --- actual (normalized)\n{}--- actual, as psql printed it\n{}",
        step.line,
        block.line,
        indent(&step.sql),
        indent(want),
        indent(got),
        indent(raw)
    )
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}
