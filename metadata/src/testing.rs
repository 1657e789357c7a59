//! For tests of the crates that keep their records here (feature `testing`): a schema of
//! its own in the machine's PostgreSQL (`ISOPLANE_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped when the value is.

use std::sync::atomic::{AtomicU64, Ordering};

/// The PostgreSQL the tests of this project use; a server that does not answer fails them.
pub fn postgres_url() -> String {
    std::env::var("ISOPLANE_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

static SCHEMA_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh schema; `url` connects with `search_path` set to it.
#[derive(Debug)]
pub struct TestSchema {
    base_url: String,
    name: String,
    pub url: String,
}

impl TestSchema {
    /// Creates `{prefix}_{pid}_{n}_{nanos}`. Panics, naming the URL, if PostgreSQL does not
    /// answer.
    pub async fn create(prefix: &str) -> TestSchema {
        let base_url = postgres_url();
        sqlx::any::install_default_drivers();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let count = SCHEMA_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}_{}_{count}_{nanos}", std::process::id());
        let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(&base_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at ISOPLANE_TEST_POSTGRES_URL={base_url}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut connection)
            .await
            .unwrap_or_else(|e| panic!("cannot create schema {name}: {e}"));
        let separator = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{separator}options=-c%20search_path%3D{name}");
        TestSchema { base_url, name, url }
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // A thread of its own: works inside and outside a runtime, and after a panic.
        let (url, name) = (self.base_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async {
                if let Ok(mut connection) = <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await {
                    let drop = format!("DROP SCHEMA IF EXISTS {name} CASCADE");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut connection).await;
                }
            });
        });
        let _ = dropped.join();
    }
}
