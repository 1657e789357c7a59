//! The asset server's configuration: a TOML file plus `ISOPLANE_ASSETS_*` environment
//! overrides, every field with a default that suits a laptop, checked as a whole (every
//! problem listed at once) before any socket, file or connection is opened.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use isoplane_service::config::{EnvKind, EnvSetting, ServiceConfig};
use serde::Deserialize;

pub use isoplane_service::config::ConfigError;
pub use isoplane_service::object_storage::{S3Config, StoreConfig, StoreKind};

use crate::rules::{DEFAULT_MEDIA_TYPES, media_type_essence};

/// Everything the asset server needs to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The workspace this server serves; write tokens must name it.
    pub workspace: String,
    /// Secret of the HS256 join tokens (the signaling server's `token_secret`). Required.
    pub token_secret: String,
    /// Folder for the default SQLite file and the default local object store.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`. Default: `sqlite://DATA_DIR/assets.db`.
    pub database_url: Option<String>,
    /// Connections in the database pool.
    pub database_connections: u32,
    pub store: StoreConfig,
    pub limits: Limits,
    pub cache: CacheConfig,
    pub recordings: RecordingsConfig,
}

/// The SFU's recordings, which this server lists and serves (docs/recording.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingsConfig {
    /// Recordings are deleted this many days after they ended (audited); 0 keeps them.
    pub retention_days: u32,
}

impl Default for RecordingsConfig {
    fn default() -> RecordingsConfig {
        RecordingsConfig { retention_days: 30 }
    }
}

/// Limits on what clients may send.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest asset upload, in bytes.
    pub max_upload_bytes: u64,
    /// Largest world publish request (the world JSON and its envelope), in bytes.
    pub max_world_bytes: usize,
    /// Media types uploads may declare (`Content-Type`, parameters ignored).
    pub allowed_media_types: Vec<String>,
}

/// The in-memory cache of small, often requested assets.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Total bytes of asset content kept in memory; 0 disables the cache.
    pub max_bytes: u64,
    /// Larger assets are always streamed from the store.
    pub max_object_bytes: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            workspace: "default".into(),
            token_secret: String::new(),
            data_dir: PathBuf::from("isoplane-data"),
            database_url: None,
            database_connections: 8,
            store: StoreConfig::default(),
            limits: Limits::default(),
            cache: CacheConfig::default(),
            recordings: RecordingsConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_upload_bytes: 32 * 1024 * 1024,
            max_world_bytes: 16 * 1024 * 1024,
            allowed_media_types: DEFAULT_MEDIA_TYPES.iter().map(|t| (*t).to_owned()).collect(),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig { max_bytes: 64 * 1024 * 1024, max_object_bytes: 1024 * 1024 }
    }
}

impl Config {
    /// Reads a TOML configuration (without the checks across fields).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        isoplane_service::config::from_toml_unchecked(text, "the configuration")
    }

    /// Reads a configuration file (or the defaults), then applies `ISOPLANE_ASSETS_*`
    /// variables from `environment`; [`Config::validate`] checks the result.
    pub fn load(
        path: Option<&Path>,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        isoplane_service::config::load_unchecked(path, environment)
    }

    /// Checks the settings that cannot be checked field by field, all at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        isoplane_service::config::validate(self)
    }
}

impl ServiceConfig for Config {
    const SERVICE: &'static str = "ASSETS";
    const NAME: &'static str = "asset server";
    const ENVIRONMENT: &'static [EnvSetting] = &[
        EnvSetting::new("LISTEN", "listen", EnvKind::Text),
        EnvSetting::new("WORKSPACE", "workspace", EnvKind::Text),
        EnvSetting::new("TOKEN_SECRET", "token_secret", EnvKind::Text),
        EnvSetting::new("DATA_DIR", "data_dir", EnvKind::Text),
        EnvSetting::new("DATABASE_URL", "database_url", EnvKind::Text),
        EnvSetting::new("STORE", "store.kind", EnvKind::Text),
        EnvSetting::new("STORE_DIRECTORY", "store.directory", EnvKind::Text),
        EnvSetting::new("S3_ENDPOINT", "store.s3.endpoint", EnvKind::Text),
        EnvSetting::new("S3_BUCKET", "store.s3.bucket", EnvKind::Text),
        EnvSetting::new("S3_REGION", "store.s3.region", EnvKind::Text),
        EnvSetting::new("S3_ACCESS_KEY_ID", "store.s3.access_key_id", EnvKind::Text),
        EnvSetting::new("S3_SECRET_ACCESS_KEY", "store.s3.secret_access_key", EnvKind::Text),
        EnvSetting::new("S3_VIRTUAL_HOSTED_STYLE", "store.s3.virtual_hosted_style", EnvKind::Flag),
        EnvSetting::new("MAX_UPLOAD_BYTES", "limits.max_upload_bytes", EnvKind::Number),
        EnvSetting::new("ALLOWED_MEDIA_TYPES", "limits.allowed_media_types", EnvKind::List),
        EnvSetting::new("RECORDING_RETENTION_DAYS", "recordings.retention_days", EnvKind::Number),
    ];

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.token_secret.len() < 16 {
            problems.push("token_secret: set a secret of at least 16 characters (the signaling server's)".to_owned());
        }
        if !isoplane_world_format::is_valid_id(&self.workspace) {
            problems.push("workspace: 1 to 64 ASCII letters, digits, `-`, `_` or `.`".to_owned());
        }
        if let Some(url) = &self.database_url
            && crate::metadata::Backend::of_url(url).is_none()
        {
            problems.push("database_url: must start with sqlite:// or postgres://".to_owned());
        }
        if self.database_connections == 0 {
            problems.push("database_connections: at least 1".to_owned());
        }
        problems.extend(self.store.problems("store"));
        if self.limits.max_upload_bytes == 0 {
            problems.push("limits.max_upload_bytes: at least 1".to_owned());
        }
        if self.limits.max_world_bytes < 1024 {
            problems.push("limits.max_world_bytes: at least 1024".to_owned());
        }
        if self.limits.allowed_media_types.is_empty() {
            problems.push("limits.allowed_media_types: list at least one media type".to_owned());
        }
        for media_type in &self.limits.allowed_media_types {
            if media_type_essence(media_type).as_deref() != Some(media_type.as_str()) {
                problems.push(format!(
                    "limits.allowed_media_types: `{media_type}` is not a lowercase type/subtype such as image/png"
                ));
            }
        }
        if self.cache.max_object_bytes > self.cache.max_bytes && self.cache.max_bytes > 0 {
            problems.push("cache.max_object_bytes: at most cache.max_bytes".to_owned());
        }
        problems
    }
}

impl Config {
    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("assets.db").display()))
    }

    /// The local store's directory in force.
    pub fn store_directory(&self) -> PathBuf {
        self.store.directory_or(&self.data_dir.join("objects"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_at_once() {
        let config = Config::from_toml(
            r#"
            workspace = "bad name"
            database_url = "mysql://x"
            [store]
            kind = "s3"
            [limits]
            allowed_media_types = ["Image/PNG"]
            "#,
        )
        .unwrap_or_default();
        let Err(error) = config.validate() else { panic!("the configuration is invalid") };
        let text = error.problems.join("\n");
        for field in ["token_secret", "workspace", "database_url", "store.s3.bucket", "allowed_media_types"] {
            assert!(text.contains(field), "{field} missing from {text}");
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let environment = [
            ("ISOPLANE_ASSETS_LISTEN", "127.0.0.1:9999"),
            ("ISOPLANE_ASSETS_DATABASE_URL", "postgres://u@127.0.0.1/db"),
            ("ISOPLANE_ASSETS_STORE", "s3"),
            ("ISOPLANE_ASSETS_S3_BUCKET", "assets"),
            ("ISOPLANE_ASSETS_ALLOWED_MEDIA_TYPES", "image/png, image/webp"),
            ("PATH", "/usr/bin"),
        ];
        let file = std::env::temp_dir().join(format!("isoplane-assets-{}.toml", std::process::id()));
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\nworkspace = \"from-file\"\n").expect("a temporary file");
        let result = Config::load(Some(&file), environment.map(|(k, v)| (k.to_owned(), v.to_owned())));
        let _ = std::fs::remove_file(&file);
        let config = result.expect("the overrides apply");
        assert_eq!(config.workspace, "from-file");
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.database_url(), "postgres://u@127.0.0.1/db");
        assert_eq!(config.store.kind, StoreKind::S3);
        assert_eq!(config.limits.allowed_media_types, ["image/png", "image/webp"]);
        let unknown = Config::load(None, [("ISOPLANE_ASSETS_NOPE".to_owned(), "1".to_owned())]);
        assert!(unknown.is_err());
        let bad_store = Config::load(None, [("ISOPLANE_ASSETS_STORE".to_owned(), "ftp".to_owned())]);
        assert!(bad_store.is_err_and(|e| e.problems[0].starts_with("ISOPLANE_ASSETS_STORE: ")));
    }

    #[test]
    fn defaults_put_everything_in_the_data_dir() {
        let config = Config { token_secret: "0123456789abcdef".into(), ..Config::default() };
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.database_url(), "sqlite://isoplane-data/assets.db");
        assert_eq!(config.store_directory(), PathBuf::from("isoplane-data/objects"));
    }
}
