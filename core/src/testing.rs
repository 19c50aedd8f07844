//! Throwaway databases for tests, on both backends (feature `test-support`).
//!
//! Every PostgreSQL test gets a new database with a random name, migrated by the
//! real migrations; every SQLite test a new file. PostgreSQL is found through
//! `BOOKKEEPER_TEST_POSTGRES_URL`, then a `postgres://` `DATABASE_URL`, then the
//! local default. When it cannot be reached the test is skipped with a message,
//! unless `BOOKKEEPER_REQUIRE_POSTGRES=1`, in which case it fails; the number
//! skipped is said again, loudly, when the test binary exits. Slow tests run only
//! with `BOOKKEEPER_SLOW_TESTS=1` ([`run_slow_test`]).

use std::path::PathBuf;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};
use uuid::Uuid;

use crate::store::Store;

const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Which backend a test database uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh PostgreSQL database.
    Postgres,
    /// A fresh SQLite file.
    Sqlite,
}

/// A migrated, empty database that belongs to one test.
pub struct TestDb {
    /// A store on it, connected as the owner.
    pub store: Store,
    /// Its URL (owner).
    pub url: String,
    backend: Backend,
    name: String,
    file: Option<PathBuf>,
}

/// The maintenance URL of the test PostgreSQL server.
pub fn postgres_admin_url() -> String {
    if let Ok(url) = std::env::var("BOOKKEEPER_TEST_POSTGRES_URL") {
        return url;
    }
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => url,
        _ => LOCAL_POSTGRES.to_string(),
    }
}

fn postgres_required() -> bool {
    std::env::var("BOOKKEEPER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Tests of this test binary skipped so far, for the summary at its exit.
static SKIPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static SKIPPED_SLOW: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

/// Said once more at the very end of the test binary's run, after the harness's
/// own summary, where a green run that tested little cannot be missed.
extern "C" fn say_what_was_skipped() {
    use std::sync::atomic::Ordering;
    let (absent, slow) = (SKIPPED.load(Ordering::SeqCst), SKIPPED_SLOW.load(Ordering::SeqCst));
    if absent > 0 {
        eprintln!(
            "\n!!! {absent} test(s) of this binary were SKIPPED: PostgreSQL is not reachable at {}.\n\
             !!! Start it, or set BOOKKEEPER_REQUIRE_POSTGRES=1 to make them fail instead.\n",
            crate::config::DatabaseUrl::new(postgres_admin_url())
        );
    }
    if slow > 0 {
        eprintln!("\n!!! {slow} slow test(s) of this binary were skipped: set BOOKKEEPER_SLOW_TESTS=1 to run them.\n");
    }
}

fn count_skip(counter: &std::sync::atomic::AtomicUsize) {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    // SAFETY: `atexit` takes a plain function pointer that lives as long as the
    // program; registering it once, from any thread, is what it is for.
    REGISTERED.call_once(|| unsafe {
        atexit(say_what_was_skipped);
    });
    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// Whether to run a slow test (the chaos run, a thousand approvals, benchmark
/// smoke runs): only with `BOOKKEEPER_SLOW_TESTS=1`, which CI sets. Otherwise the
/// test returns early and is counted in the summary at the end.
pub fn run_slow_test(name: &str) -> bool {
    if std::env::var("BOOKKEEPER_SLOW_TESTS").is_ok_and(|v| v == "1") {
        return true;
    }
    eprintln!("skipping the slow test {name}: set BOOKKEEPER_SLOW_TESTS=1 to run it");
    count_skip(&SKIPPED_SLOW);
    false
}

impl TestDb {
    /// A new database on `backend`, or `None` when PostgreSQL is absent and not
    /// required (the test then returns early, saying why on stderr).
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Postgres => TestDb::postgres().await,
            Backend::Sqlite => Some(TestDb::sqlite().await),
        }
    }

    /// A new SQLite file in the temp directory.
    pub async fn sqlite() -> TestDb {
        let db = TestDb::sqlite_unmigrated().await;
        db.store.migrate().await.expect("migrate test SQLite file");
        db
    }

    async fn sqlite_unmigrated() -> TestDb {
        let file = std::env::temp_dir().join(format!("bookkeeper-test-{}.db", Uuid::new_v4()));
        let url = format!("sqlite://{}", file.display());
        let store = Store::connect(&url).await.expect("open test SQLite file");
        TestDb { store, url, backend: Backend::Sqlite, name: String::new(), file: Some(file) }
    }

    /// A new database on `backend` with the previous release's schema only
    /// ([`crate::migrations::PREVIOUS_RELEASE`]); `store.migrate()` upgrades it.
    pub async fn previous_release(backend: Backend) -> Option<TestDb> {
        let (pg, lite) = crate::migrations::PREVIOUS_RELEASE;
        match backend {
            Backend::Postgres => {
                let db = TestDb::postgres_unmigrated().await?;
                let pool = db.store.pg_pool().expect("a PostgreSQL store").clone();
                crate::migrations::up_to(crate::migrations::postgres(), pg).run(&pool).await.expect("old schema");
                Some(db)
            }
            Backend::Sqlite => {
                let db = TestDb::sqlite_unmigrated().await;
                let pool = db.store.sqlite_pool().expect("a SQLite store").clone();
                crate::migrations::up_to(crate::migrations::sqlite(), lite).run(&pool).await.expect("old schema");
                Some(db)
            }
        }
    }

    /// A new PostgreSQL database, or `None` when the server is absent and not required.
    pub async fn postgres() -> Option<TestDb> {
        let db = TestDb::postgres_unmigrated().await?;
        db.store.migrate().await.expect("migrate test database");
        Some(db)
    }

    async fn postgres_unmigrated() -> Option<TestDb> {
        let admin_url = postgres_admin_url();
        let mut admin = match PgConnection::connect(&admin_url).await {
            Ok(c) => c,
            Err(e) if !postgres_required() => {
                eprintln!(
                    "skipping: PostgreSQL is not reachable ({e}); set BOOKKEEPER_REQUIRE_POSTGRES=1 to fail instead"
                );
                count_skip(&SKIPPED);
                return None;
            }
            Err(e) => panic!("PostgreSQL is required (BOOKKEEPER_REQUIRE_POSTGRES=1) but not reachable: {e}"),
        };
        let name = format!("bk_test_{}", Uuid::new_v4().simple());
        admin.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await.expect("create test database");
        let options: PgConnectOptions = admin_url.parse().expect("parse PostgreSQL URL");
        let url = options.database(&name).to_url_lossy().to_string();
        let store = Store::connect(&url).await.expect("connect to test database");
        Some(TestDb { store, url, backend: Backend::Postgres, name, file: None })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL of this database for a service's role (PostgreSQL only), e.g.
    /// `book_e`. The test server trusts local connections, so no password.
    pub fn role_url(&self, role: &str) -> String {
        let options: PgConnectOptions = self.url.parse().expect("parse test URL");
        options.username(role).to_url_lossy().to_string()
    }

    /// A second, independent store on the same database (its own pool and, on
    /// PostgreSQL, its own LISTEN connection), as another process would have.
    pub async fn another_store(&self) -> Store {
        Store::connect(&self.url).await.expect("connect second store")
    }

    /// Drops the database or deletes the file.
    pub async fn cleanup(self) {
        self.store.close().await;
        match self.backend {
            Backend::Postgres => {
                if let Ok(mut admin) = PgConnection::connect(&postgres_admin_url()).await {
                    let _ = admin
                        .execute(format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name).as_str())
                        .await;
                }
            }
            Backend::Sqlite => {
                if let Some(file) = &self.file {
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
                    }
                }
            }
        }
    }
}
