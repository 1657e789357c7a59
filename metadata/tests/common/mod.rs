//! Test harness: a fresh database for each test, on either engine.
//!
//! - `Sqlite`: a SQLite file in a fresh temp dir.
//! - `Postgres`: this machine's PostgreSQL (`ISOPLANE_TEST_POSTGRES_URL`, by default the
//!   local server; the test fails if it cannot reach it) in a schema of its own, dropped
//!   at the end, the way the asset server's tests do it.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use isoplane_metadata::testing::TestSchema;

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
    schema: Option<TestSchema>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let (url, schema) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", dir.path().join("metadata.db").display()), None),
            Backend::Postgres => {
                let schema = TestSchema::create("isoplane_metadata_test").await;
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
