//! How to reach a cluster: libpq strings, URLs, `tokio_postgres` configs
//! and connected clients, with the quoting each needs.

use super::{Cluster, SUPERUSER};
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

impl Cluster {
    /// A libpq key/value connection string for database `db` as
    /// [`SUPERUSER`] over the unix socket, e.g.
    /// `host=/tmp/outbox-pg-x/sock port=40123 user=postgres dbname=app`.
    ///
    /// ```no_run
    /// let cs = outbox_tests::Cluster::shared().connstr("postgres");
    /// assert!(cs.contains("dbname=postgres"));
    /// ```
    pub fn connstr(&self, db: &str) -> String {
        format!(
            "host={} port={} user={} dbname={}",
            libpq_value(&self.socket_dir.to_string_lossy()),
            self.port,
            SUPERUSER,
            libpq_value(db)
        )
    }

    /// A URL for database `db` as [`SUPERUSER`] over TCP:
    /// `postgres://postgres@127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{}",
            self.port,
            percent_encode(db)
        )
    }

    /// A `tokio_postgres` configuration for database `db` as role `user`,
    /// over the unix socket.
    pub fn config(&self, db: &str, user: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.socket_dir)
            .port(self.port)
            .user(user)
            .dbname(db)
            .application_name("outbox_tests")
            .connect_timeout(Duration::from_secs(30));
        config
    }

    /// Connects to database `db` as role `user` over the unix socket and
    /// spawns the connection task on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or if the connection fails.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// let client = outbox_tests::Cluster::shared()
    ///     .connect("postgres", outbox_tests::SUPERUSER)
    ///     .await;
    /// let row = client.query_one("SELECT 1::int4", &[]).await.unwrap();
    /// assert_eq!(row.get::<_, i32>(0), 1);
    /// # }
    /// ```
    pub async fn connect(&self, db: &str, user: &str) -> Client {
        self.connect_with_task(db, user).await.0
    }

    /// Like [`connect`](Self::connect), also returning the connection task so
    /// the caller can wait until the connection is really closed.
    pub(crate) async fn connect_with_task(
        &self,
        db: &str,
        user: &str,
    ) -> (Client, tokio::task::JoinHandle<()>) {
        let (client, connection) = match self.config(db, user).connect(NoTls).await {
            Ok(pair) => pair,
            Err(e) => panic!(
                "outbox_tests: cannot connect to database {db:?} as role {user:?} via {}: {}\n\
                 --- server log {} ---\n{}",
                self.socket_dir.display(),
                crate::describe_error(&e),
                self.log_path.display(),
                self.log_contents()
            ),
        };
        let db = db.to_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!(
                    "outbox_tests: connection to database {db:?} ended with an error: {}",
                    crate::describe_error(&e)
                );
            }
        });
        (client, task)
    }
}

/// A `postgresql.conf` string literal.
pub(super) fn conf_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// A libpq connection-string value, quoted when needed.
fn libpq_value(s: &str) -> String {
    if !s.is_empty() && !s.contains([' ', '\'', '\\', '\t', '\n']) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// Percent-encodes everything but unreserved URL characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(libpq_value("abc"), "abc");
        assert_eq!(libpq_value("a b'c"), r"'a b\'c'");
        assert_eq!(conf_string("/tmp/it's"), "'/tmp/it''s'");
        assert_eq!(percent_encode("t_1_2"), "t_1_2");
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
    }
}
