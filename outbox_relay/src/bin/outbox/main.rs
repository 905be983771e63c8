//! `outbox`: the operator's CLI — look at an outbox and repair it without
//! writing SQL. A second binary beside `outbox-relay`, not its
//! subcommands: the relay is a daemon with a publisher and workers, this is
//! a one-shot tool for a terminal or a script; they share the connection
//! flags and TLS (`outbox_relay::cli::ConnectionArgs`) and nothing else.
//!
//! Exit status, for scripts: 0 done (also when there was nothing to do);
//! 1 the database refused or could not be reached (the message carries the
//! server's text and SQLSTATE); 2 a usage error, or a change refused for
//! want of `--yes`.

mod dead;
mod inspect;
mod messages;
mod output;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use outbox_relay::cli::ConnectionArgs;
use outbox_relay::{error_chain, Error};
use std::process::ExitCode;

/// Look at an outbox and repair it (CREATE EXTENSION outbox).
///
/// Reading needs what outbox.grant_admin gives (SELECT on the outbox's
/// views); requeue and purge need the admin functions.
#[derive(Debug, Parser)]
#[command(name = "outbox", version, long_about = None)]
struct Args {
    #[command(flatten)]
    connection: ConnectionArgs,

    /// Print JSON (an array of objects) instead of a table.
    #[arg(long, global = true)]
    json: bool,

    /// The named outbox to look at (created with outbox.create_outbox;
    /// schema outbox_NAME); without it, the default outbox.
    #[arg(long, global = true, env = "OUTBOX_OUTBOX", value_name = "NAME")]
    outbox: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Messages per topic and state, and the lag (age of the oldest ready).
    Stats,
    /// Keys whose messages wait behind an unfinished oldest one, and why.
    BlockedKeys {
        /// Most keys to show.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i32).range(0..))]
        limit: i32,
    },
    /// The next messages a relay would get, without claiming them.
    Peek {
        /// Only this topic; repeatable.
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// Most messages to show.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(0..))]
        limit: i64,
    },
    /// Messages in any state, oldest id first (outbox.list_messages).
    Messages(messages::Filter),
    /// One message by id, with its payload (outbox.get_message).
    Message {
        /// The outbox id.
        id: i64,
    },
    /// Dead letters: list, requeue, purge.
    #[command(subcommand)]
    Dead(dead::DeadCommand),
    /// Remove dedup keys no message holds and history past
    /// outbox.retention (outbox.cleanup), until nothing is left to remove.
    Cleanup {
        /// Rows per call (one short transaction each).
        #[arg(long, default_value_t = 10000, value_parser = clap::value_parser!(i32).range(1..=1_000_000))]
        max_rows: i32,
    },
}

/// How a command failed: which exit status, and what to say.
pub enum Failure {
    /// The database (or reaching it): exit 1.
    Db(Error),
    /// Usage, or a refusal: exit 2.
    Usage(String),
    /// The server (named) could not be reached or refused the login: exit 1.
    Unreachable(String, Error),
}

/// Where `db` points, for "cannot connect to ...".
fn target(db: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let port = db.get_ports().first().copied().unwrap_or(5432);
    let hosts: Vec<String> = db
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => format!("{name}:{port}"),
            Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
        })
        .collect();
    let db_name = db.get_dbname().unwrap_or("(default)");
    format!("{} (database {db_name})", hosts.join(", "))
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::Config { .. } | Error::InvalidInput { .. } => Failure::Usage(e.to_string()),
            e => Failure::Db(e),
        }
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::from(Error::from(e))
    }
}

/// The connection, and the outbox every command works on.
pub struct Db {
    pub client: tokio_postgres::Client,
    pub store: outbox_client::Store,
}

impl Db {
    /// A statement of `sql/` (written against the default outbox) for
    /// this outbox.
    pub fn sql(&self, text: &str) -> String {
        self.store.statements().qualify(text)
    }
}

async fn connect(args: &Args, matches: &clap::ArgMatches) -> Result<Db, Failure> {
    let store = match &args.outbox {
        None => outbox_client::Store,
        Some(name) => outbox_client::Store::for_outbox(name)
            .map_err(|e| Failure::Usage(format!("--outbox: {e}")))?,
    };
    let info = args.connection.conninfo(matches).map_err(Failure::Usage)?;
    let (client, connection) = outbox_relay::connect(&info.db, &info.tls)
        .await
        .map_err(|e| Failure::Unreachable(target(&info.db), e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("outbox: connection closed: {}", error_chain(&e));
        }
    });
    // Every statement is schema-qualified; an empty search_path makes sure
    // nothing of another schema is picked up (CVE-2018-1058).
    client
        .batch_execute("SELECT pg_catalog.set_config('search_path', '', false)")
        .await?;
    store.check_extension(&client).await?;
    if args.outbox.is_some() {
        // A named outbox that does not exist: say so before any command
        // (Error::OutboxMissing, exit 1).
        store.stats(&client).await?;
    }
    Ok(Db { client, store })
}

async fn run(args: &Args, matches: &clap::ArgMatches) -> Result<(), Failure> {
    let db = connect(args, matches).await?;
    let json = args.json;
    match &args.command {
        Command::Stats => inspect::stats(&db, json).await,
        Command::BlockedKeys { limit } => inspect::blocked_keys(&db, *limit, json).await,
        Command::Peek { topics, limit } => inspect::peek(&db, topics, *limit, json).await,
        Command::Messages(filter) => messages::list(&db, filter, json).await,
        Command::Message { id } => messages::show(&db, *id, json).await,
        Command::Dead(command) => dead::run(&db, command, json).await,
        Command::Cleanup { max_rows } => messages::cleanup(&db, *max_rows, json).await,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(&args, &matches).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("outbox: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Unreachable(target, e)) => {
            eprintln!("outbox: cannot connect to {target}: {}", error_chain(&e));
            ExitCode::FAILURE
        }
        Err(Failure::Db(e)) => {
            // The whole chain: "db error" alone does not say what the
            // server answered.
            eprintln!("outbox: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
