//! Where services keep objects: a local directory or an S3-compatible bucket, both through
//! `object_store`. The asset server keeps assets there and the SFU its recordings, in
//! the same store, so the asset server can list and serve what the SFU wrote.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use serde::{Deserialize, Serialize};

/// A store's settings, as a config file's `[store]` (or `[recording.store]`) gives them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `local` (a directory) or `s3`.
    pub kind: StoreKind,
    /// Directory of the local store. Default: the service's (`DATA_DIR/objects`).
    pub directory: Option<PathBuf>,
    pub s3: S3Config,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    Local,
    S3,
}

/// An S3-compatible bucket.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL; empty for AWS itself. An `http://` one is allowed (a store on a
    /// private network).
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// `https://BUCKET.ENDPOINT/` instead of path-style `https://ENDPOINT/BUCKET/`.
    pub virtual_hosted_style: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .finish_non_exhaustive()
    }
}

impl Default for S3Config {
    fn default() -> S3Config {
        S3Config {
            endpoint: None,
            bucket: String::new(),
            region: "us-east-1".into(),
            access_key_id: None,
            secret_access_key: None,
            virtual_hosted_style: false,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig { kind: StoreKind::Local, directory: None, s3: S3Config::default() }
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    #[error("cannot open the local object directory {path}: {source}")]
    LocalDirectory { path: PathBuf, source: std::io::Error },
    #[error("object store configuration: {0}")]
    Config(#[source] object_store::Error),
}

impl StoreConfig {
    /// What is wrong with the settings, each problem named by its field under `prefix`
    /// (`store`, `recording.store`).
    pub fn problems(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.kind != StoreKind::S3 {
            return problems;
        }
        let s3 = &self.s3;
        if s3.bucket.is_empty() {
            problems.push(format!("{prefix}.s3.bucket: required when {prefix}.kind = \"s3\""));
        }
        if s3.access_key_id.is_some() != s3.secret_access_key.is_some() {
            problems.push(format!("{prefix}.s3: set access_key_id and secret_access_key together"));
        }
        if let Some(endpoint) = &s3.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            problems.push(format!("{prefix}.s3.endpoint: an http:// or https:// URL"));
        }
        problems
    }

    /// The local directory in force: the configured one, else `default`.
    pub fn directory_or(&self, default: &Path) -> PathBuf {
        self.directory.clone().unwrap_or_else(|| default.to_owned())
    }

    /// Opens the store (a local one in `directory_or(default_directory)`, created if
    /// missing).
    pub fn open(&self, default_directory: &Path) -> Result<Arc<dyn ObjectStore>, OpenStoreError> {
        match self.kind {
            StoreKind::Local => {
                let path = self.directory_or(default_directory);
                std::fs::create_dir_all(&path)
                    .map_err(|source| OpenStoreError::LocalDirectory { path: path.clone(), source })?;
                let store = LocalFileSystem::new_with_prefix(&path)
                    .map_err(|e| OpenStoreError::LocalDirectory { path, source: std::io::Error::other(e.to_string()) })?
                    .with_automatic_cleanup(true);
                Ok(Arc::new(store))
            }
            StoreKind::S3 => {
                let s3 = &self.s3;
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_virtual_hosted_style_request(s3.virtual_hosted_style)
                    .with_allow_http(s3.endpoint.as_deref().is_some_and(|e| e.starts_with("http://")))
                    .with_retry(s3_retries());
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(key) = &s3.access_key_id {
                    builder = builder.with_access_key_id(key);
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(secret);
                }
                Ok(Arc::new(builder.build().map_err(OpenStoreError::Config)?))
            }
        }
    }
}

/// A few quick retries: a request a client waits on should fail fast, not after minutes.
fn s3_retries() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(5),
    }
}
