//! Test harness: a fresh database for each test, on either engine.
//!
//! - `Sqlite`: a SQLite file in a fresh temp dir.
//! - `Postgres`: this machine's PostgreSQL (`ISOPLANE_TEST_POSTGRES_URL`, by default the
//!   local server; the test fails if it cannot reach it) in a schema of its own, dropped
//!   at the end, the way the asset server's tests do it.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use isoplane_metadata::Metadata;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An empty database for one test; dropped (or deleted) with it.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    dir: tempfile::TempDir,
    schema: Option<PgSchema>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let (url, schema) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", dir.path().join("metadata.db").display()), None),
            Backend::Postgres => {
                let schema = PgSchema::create().await;
                (schema.url.clone(), Some(schema))
            }
        };
        TestDb { backend, url, dir, schema }
    }

    /// Opens the database (migrating it), as a service does at start.
    pub async fn open(&self) -> Metadata {
        Metadata::connect(&self.url, 4).await.unwrap()
    }

    /// A raw connection, to write what the API never would (creating the SQLite file if
    /// needed).
    pub async fn raw(&self) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        let url = match self.backend {
            Backend::Sqlite => format!("{}?mode=rwc", self.url),
            Backend::Postgres => self.url.clone(),
        };
        <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await.unwrap()
    }

    /// The migration folder of this engine.
    pub fn migrations(&self) -> std::path::PathBuf {
        let engine = match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(engine)
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

// ---- PostgreSQL: one schema per test ----

static SCHEMA_COUNTER: AtomicU64 = AtomicU64::new(0);

struct PgSchema {
    base_url: String,
    name: String,
    /// The base URL with `search_path` set to the schema.
    url: String,
}

fn postgres_url() -> String {
    // The local server this project's machines run; a missing server fails the tests.
    std::env::var("ISOPLANE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

impl PgSchema {
    async fn create() -> PgSchema {
        let base_url = postgres_url();
        sqlx::any::install_default_drivers();
        let name = format!(
            "isoplane_metadata_test_{}_{}_{}",
            std::process::id(),
            SCHEMA_COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(&base_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at ISOPLANE_TEST_POSTGRES_URL={base_url}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}"))).execute(&mut connection).await.unwrap();
        let separator = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{separator}options=-c%20search_path%3D{name}");
        PgSchema { base_url, name, url }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Runs on a thread of its own so it works inside and outside a runtime, and even
        // when the test panicked.
        let (url, name) = (self.base_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {name} CASCADE")))
                    .execute(&mut connection)
                    .await
                    .unwrap();
            });
        });
        let _ = dropped.join();
    }
}
