//! A fresh database per test.

use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_postgres::Client;

use crate::cluster::{Cluster, TemplateState, SUPERUSER};
use crate::{describe_error, quote_ident};

/// The extension the product tests exercise.
pub const EXTENSION: &str = "outbox";

/// The template database with the extension created in it, made once per
/// cluster on the first [`TestDb::with_extension`]. It is marked
/// `IS_TEMPLATE` and `ALLOW_CONNECTIONS false`, so nobody can stay connected
/// to it and break `CREATE DATABASE ... TEMPLATE outbox_template`.
pub const TEMPLATE_DB: &str = "outbox_template";

/// The template of plain databases. `template0` never accepts connections, so
/// copying it cannot fail with "source database is being accessed by other
/// users".
const PLAIN_TEMPLATE: &str = "template0";

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A fresh database `t_<counter>_<pid>` in the [shared cluster](Cluster::shared),
/// for one test.
///
/// Tests run in parallel threads; each gets its own database, so they do not
/// see each other's tables. Roles, however, are cluster-wide: make them with
/// [`create_role`](Self::create_role).
///
/// Dropping a `TestDb` does nothing (in particular it never blocks): the
/// database stays until the whole cluster is thrown away at process exit.
///
/// ```no_run
/// # async fn demo() {
/// use outbox_tests::TestDb;
///
/// let db = TestDb::with_extension().await; // CREATE EXTENSION outbox done
/// let client = db.client().await;
/// client.batch_execute("CREATE TABLE orders (id int PRIMARY KEY)").await.unwrap();
/// # }
/// ```
#[derive(Debug)]
pub struct TestDb {
    cluster: &'static Cluster,
    name: String,
    extension: bool,
}

impl TestDb {
    /// Same as [`with_extension`](Self::with_extension): the default for
    /// product tests.
    pub async fn new() -> TestDb {
        TestDb::with_extension().await
    }

    /// A fresh database in which `CREATE EXTENSION outbox CASCADE` has been
    /// run (it is copied from [`TEMPLATE_DB`], which is made on first use).
    ///
    /// # Panics
    ///
    /// If the extension cannot be created — e.g. it is not installed (run
    /// `cargo pgrx install` first) — with PostgreSQL's error and whether the
    /// control file exists; also if the cluster cannot start or `CREATE
    /// DATABASE` fails.
    pub async fn with_extension() -> TestDb {
        TestDb::create(true).await
    }

    /// A fresh database without the extension (a copy of `template0`).
    ///
    /// ```no_run
    /// # async fn demo() {
    /// let db = outbox_tests::TestDb::plain().await;
    /// assert!(!db.has_extension());
    /// # }
    /// ```
    pub async fn plain() -> TestDb {
        TestDb::create(false).await
    }

    /// A fresh database with the extension in `cluster` (e.g. a
    /// [`Cluster::private`] one).
    pub async fn in_cluster(cluster: &'static Cluster) -> TestDb {
        TestDb::create_in(cluster, true).await
    }

    async fn create(extension: bool) -> TestDb {
        TestDb::create_in(Cluster::shared(), extension).await
    }

    async fn create_in(cluster: &'static Cluster, extension: bool) -> TestDb {
        let name = format!(
            "t_{}_{}",
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        );
        // One CREATE DATABASE at a time, and never while anyone (we) is
        // connected to the template.
        let mut state = cluster.create_db.lock().await;
        let template = if extension {
            ensure_extension_template(cluster, &mut state).await;
            TEMPLATE_DB
        } else {
            PLAIN_TEMPLATE
        };
        let (admin, task) = cluster.connect_with_task("postgres", SUPERUSER).await;
        let sql = format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_ident(&name),
            quote_ident(template)
        );
        if let Err(e) = admin.batch_execute(&sql).await {
            panic!("outbox_tests: {sql} failed: {}", describe_error(&e));
        }
        drop(admin);
        let _ = task.await;
        drop(state);
        TestDb {
            cluster,
            name,
            extension,
        }
    }

    /// The database's name, `t_<counter>_<pid>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cluster the database lives in.
    pub fn cluster(&self) -> &'static Cluster {
        self.cluster
    }

    /// Whether the extension was created in this database.
    pub fn has_extension(&self) -> bool {
        self.extension
    }

    /// libpq key/value connection string as [`SUPERUSER`] over the unix
    /// socket (see [`Cluster::connstr`]).
    pub fn connstr(&self) -> String {
        self.cluster.connstr(&self.name)
    }

    /// `postgres://postgres@127.0.0.1:<port>/<name>` (TCP; see
    /// [`Cluster::url`]).
    pub fn url(&self) -> String {
        self.cluster.url(&self.name)
    }

    /// A `tokio_postgres` configuration for this database as role `user`.
    pub fn config(&self, user: &str) -> tokio_postgres::Config {
        self.cluster.config(&self.name, user)
    }

    /// A new connection as [`SUPERUSER`] over the unix socket; the connection
    /// task is spawned on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or if the connection fails.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// let db = outbox_tests::TestDb::plain().await;
    /// let client = db.client().await;
    /// let row = client.query_one("SELECT current_database()", &[]).await.unwrap();
    /// assert_eq!(row.get::<_, String>(0), db.name());
    /// # }
    /// ```
    pub async fn client(&self) -> Client {
        self.cluster.connect(&self.name, SUPERUSER).await
    }

    /// A new connection as role `role` (which must exist and have `LOGIN`),
    /// for privilege tests. Authentication is `trust`, so no password.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// let db = outbox_tests::TestDb::plain().await;
    /// let role = db.create_role("app").await;
    /// let app = db.client_as(&role).await;
    /// let err = app.batch_execute("CREATE TABLE public.x (id int)").await.unwrap_err();
    /// # let _ = err;
    /// # }
    /// ```
    pub async fn client_as(&self, role: &str) -> Client {
        self.cluster.connect(&self.name, role).await
    }

    /// Creates a `LOGIN` role (no other privileges) named
    /// `<database name>_<suffix>` and returns that name. Roles are
    /// cluster-wide, so the database name in it keeps parallel tests apart.
    ///
    /// # Panics
    ///
    /// If the name would exceed PostgreSQL's 63 bytes or `CREATE ROLE` fails.
    pub async fn create_role(&self, suffix: &str) -> String {
        let role = format!("{}_{suffix}", self.name);
        assert!(
            role.len() <= 63,
            "outbox_tests: role name {role:?} is longer than 63 bytes; use a shorter suffix"
        );
        let client = self.client().await;
        let sql = format!("CREATE ROLE {} LOGIN", quote_ident(&role));
        if let Err(e) = client.batch_execute(&sql).await {
            panic!("outbox_tests: {sql} failed: {}", describe_error(&e));
        }
        role
    }

    /// Runs a psql script against this database (see [`Cluster::psql`]) on
    /// tokio's blocking pool, so the calling runtime keeps running.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// let db = outbox_tests::TestDb::plain().await;
    /// let out = db.psql("SELECT 1;").await;
    /// assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    /// # }
    /// ```
    pub async fn psql(&self, sql: &str) -> Output {
        let cluster = self.cluster;
        let name = self.name.clone();
        let sql = sql.to_owned();
        tokio::task::spawn_blocking(move || cluster.psql(&name, &sql))
            .await
            .expect("psql task panicked")
    }
}

/// Makes [`TEMPLATE_DB`] with the extension unless it exists already. Called
/// with the `CREATE DATABASE` lock held.
async fn ensure_extension_template(cluster: &Cluster, state: &mut TemplateState) {
    if state.extension_template_ready {
        return;
    }
    let template = quote_ident(TEMPLATE_DB);
    let (admin, admin_task) = cluster.connect_with_task("postgres", SUPERUSER).await;
    // DROP: a leftover of an earlier failed attempt in this process. Two
    // round trips: neither statement may run inside a (multi-statement)
    // transaction block.
    for sql in [
        format!("DROP DATABASE IF EXISTS {template}"),
        format!("CREATE DATABASE {template}"),
    ] {
        if let Err(e) = admin.batch_execute(&sql).await {
            panic!("outbox_tests: {sql} failed: {}", describe_error(&e));
        }
    }

    let (client, task) = cluster.connect_with_task(TEMPLATE_DB, SUPERUSER).await;
    let created = client
        .batch_execute(&format!(
            "CREATE EXTENSION {} CASCADE",
            quote_ident(EXTENSION)
        ))
        .await;
    drop(client);
    let _ = task.await;
    wait_for_no_backends(&admin, TEMPLATE_DB).await;

    if let Err(e) = created {
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {template}"))
            .await;
        let control = cluster.extension_control_file(EXTENSION);
        let installed = if control.exists() {
            format!("{} exists", control.display())
        } else {
            format!(
                "{} does not exist: the extension is not installed (run `cargo pgrx install` \
                 for PostgreSQL 15 first)",
                control.display()
            )
        };
        panic!(
            "outbox_tests: CREATE EXTENSION {EXTENSION} CASCADE failed: {}\n{installed}",
            describe_error(&e)
        );
    }
    let sql = format!("ALTER DATABASE {template} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false");
    if let Err(e) = admin.batch_execute(&sql).await {
        panic!("outbox_tests: {sql} failed: {}", describe_error(&e));
    }
    drop(admin);
    let _ = admin_task.await;
    state.extension_template_ready = true;
}

/// Waits until no backend is connected to `db`: a closed client socket does
/// not mean its backend has exited yet.
async fn wait_for_no_backends(admin: &Client, db: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&db],
            )
            .await
            .unwrap_or_else(|e| panic!("outbox_tests: pg_stat_activity: {}", describe_error(&e)));
        if row.get::<_, i64>(0) == 0 {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("outbox_tests: backends stayed connected to {db:?} for 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
