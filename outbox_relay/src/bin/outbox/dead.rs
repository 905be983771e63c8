//! `outbox dead list | requeue | purge`. A change runs first as a dry run
//! (the real function in a transaction that is rolled back, so its own
//! rules and count apply), then — with `--yes`, or a "y" at a terminal —
//! for real. `--dry-run` stops after saying what would change.

use crate::output::Rows;
use crate::{Db, Failure};
use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};
use tokio_postgres::types::{ToSql, Type};

const LIST: &str = include_str!("sql/dead_list.sql");
const IDS: &str = include_str!("sql/dead_ids.sql");

/// How many ids a dry run or prompt lists.
const SHOWN: i64 = 20;

#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// Dead letters, oldest first, with why they died.
    List {
        /// Only this topic.
        #[arg(long)]
        topic: Option<String>,
        /// Only those that died since: a duration ago (1h, 2d) or an RFC
        /// 3339 time (2026-12-01T00:00:00Z).
        #[arg(long, value_parser = parse_since)]
        since: Option<DateTime<Utc>>,
        /// Most rows to show.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(0..))]
        limit: i64,
    },
    /// Give dead letters a new set of attempts (they are ready again).
    Requeue(Change),
    /// Delete dead letters for good.
    Purge(Change),
}

/// Which dead letters a requeue or purge touches, and whether to ask.
#[derive(Debug, Args)]
#[group(skip)]
#[command(group(ArgGroup::new("which").required(true).args(["ids", "topic"])))]
pub struct Change {
    /// These dead letters (ids from `outbox dead list`); repeatable.
    #[arg(long = "id", value_name = "ID")]
    ids: Vec<i64>,
    /// Every dead letter of this topic.
    #[arg(long)]
    topic: Option<String>,
    /// With --topic, for purge: only those that died longer ago than this
    /// (e.g. 7d).
    #[arg(long, requires = "topic", value_parser = humantime::parse_duration)]
    older_than: Option<std::time::Duration>,
    /// Say what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Change without asking (needed when stdin is not a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
}

fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(ago) = humantime::parse_duration(s) {
        let ago = chrono::Duration::from_std(ago).map_err(|e| e.to_string())?;
        return Ok(Utc::now() - ago);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("{s:?} is neither a duration (1h, 2d) nor an RFC 3339 time"))
}

pub async fn run(db: &Db, command: &DeadCommand, json: bool) -> Result<(), Failure> {
    match command {
        DeadCommand::List {
            topic,
            since,
            limit,
        } => {
            let params: [(&(dyn ToSql + Sync), Type); 3] = [
                (topic, Type::TEXT),
                (since, Type::TIMESTAMPTZ),
                (limit, Type::INT8),
            ];
            let rows = db.client.query_typed(&db.sql(LIST), &params).await?;
            Rows::from_db(&rows).print(json, "no dead letters");
            Ok(())
        }
        DeadCommand::Requeue(change) => apply(db, "requeue", change, json).await,
        DeadCommand::Purge(change) => apply(db, "purge", change, json).await,
    }
}

/// Parameters of a statement, owned, with their types.
type Params = Vec<(Box<dyn ToSql + Sync>, Type)>;

/// The SQL function call a change makes, with its parameters.
fn call(verb: &str, change: &Change) -> Result<(String, Params), Failure> {
    let older = change
        .older_than
        .map(|d| format!("{} microseconds", d.as_micros()));
    Ok(match (&change.topic, verb) {
        (None, _) => (
            format!("SELECT outbox.{verb}_dead($1::bigint[])"),
            vec![(Box::new(change.ids.clone()), Type::INT8_ARRAY)],
        ),
        (Some(_), "requeue") if older.is_some() => return Err(Failure::Usage(
            "--older-than goes with purge only: requeue takes a topic's dead letters as they are"
                .into(),
        )),
        (Some(topic), "requeue") => (
            "SELECT outbox.requeue_dead_topic($1::text)".into(),
            vec![(Box::new(topic.clone()), Type::TEXT)],
        ),
        (Some(topic), _) => (
            "SELECT outbox.purge_dead_topic($1::text, older_than => $2::text::interval)".into(),
            vec![
                (Box::new(topic.clone()), Type::TEXT),
                (Box::new(older), Type::TEXT),
            ],
        ),
    })
}

/// The ids the change would touch, at most [`SHOWN`] of them.
async fn affected(db: &Db, change: &Change) -> Result<Vec<i64>, Failure> {
    let Some(topic) = &change.topic else {
        return Ok(change.ids.iter().copied().take(SHOWN as usize).collect());
    };
    let before = change
        .older_than
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| Utc::now() - d);
    let params: [(&(dyn ToSql + Sync), Type); 3] = [
        (topic, Type::TEXT),
        (&before, Type::TIMESTAMPTZ),
        (&SHOWN, Type::INT8),
    ];
    let rows = db.client.query_typed(&db.sql(IDS), &params).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

async fn apply(db: &Db, verb: &str, change: &Change, json: bool) -> Result<(), Failure> {
    let (sql, params) = call(verb, change)?;
    let params: Vec<(&(dyn ToSql + Sync), Type)> = params
        .iter()
        .map(|(p, t)| (p.as_ref(), t.clone()))
        .collect();
    // The dry run: the function itself, rolled back.
    db.client.batch_execute("BEGIN").await?;
    let counted = db.client.query_typed(&db.sql(&sql), &params).await;
    db.client.batch_execute("ROLLBACK").await?;
    let would: i32 = counted?[0].get(0);
    let ids = affected(db, change).await?;
    let report = |done: bool, n: i32| {
        if json {
            println!(
                "{}",
                json!({"action": verb, "done": done, "count": n, "ids": ids})
            );
        } else {
            let shown = ids.iter().map(ToString::to_string).collect::<Vec<_>>();
            let more = if i64::from(n) > SHOWN { ", ..." } else { "" };
            let what = if done {
                format!("{verb}d")
            } else {
                format!("would {verb}")
            };
            if n == 0 {
                println!("nothing to {verb}");
            } else {
                println!("{what} {n} dead letter(s): {}{more}", shown.join(", "));
            }
        }
    };
    if would == 0 || change.dry_run {
        report(false, would);
        return Ok(());
    }
    if !change.yes && !confirm(verb, would)? {
        return Err(Failure::Usage(format!(
            "nothing changed: {verb} needs --yes when stdin is not a terminal (or a \"y\"); \
             --dry-run shows what would change"
        )));
    }
    let done: i32 = db.client.query_typed(&db.sql(&sql), &params).await?[0].get(0);
    report(true, done);
    Ok(())
}

/// Ask at a terminal; false (refuse) anywhere else.
fn confirm(verb: &str, n: i32) -> Result<bool, Failure> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(false);
    }
    eprint!("{verb} {n} dead letter(s)? [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Usage(format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
