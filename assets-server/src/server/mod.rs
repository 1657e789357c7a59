//! The asset server's HTTP shell: routes, authentication, errors, start and shutdown.
//!
//! [`bind`] checks the configuration as a whole, opens the database (running its
//! migrations) and the object store, and only then binds the socket, so a bad setting
//! stops the start with every problem listed. [`BoundServer::run`] serves until the
//! shutdown token is cancelled, then lets requests in flight (and uploads, which run in
//! tasks of their own) finish before it returns.
//!
//! Routes (see docs/assets.md): `GET|HEAD /assets/{id}`, `POST /v1/assets`,
//! `/v1/workspaces/{workspace}/worlds…`, `/healthz`, `/readyz`, `/metrics`. Every refusal
//! has a JSON body `{"error": {"code", "message", …}}`; internal errors are logged and
//! answered with a generic 500, never with their text.

mod assets;
mod metrics;
mod recordings;
mod worlds;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use isoplane_auth::{JoinClaims, Role, TokenKey};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cache::AssetCache;
use crate::config::{Config, ConfigError};
use crate::metadata::{AuditEntry, Metadata, MetadataError};
use crate::recordings::Recordings;
use crate::store::{AssetStore, StoreError};
pub use metrics::Metrics;

/// Uploads served at once; more get 503 and may retry.
const CONCURRENT_UPLOADS: usize = 32;
/// Temporary uploads older than this are left over from a crash and deleted at start.
const STALE_UPLOAD_SECONDS: i64 = 24 * 3600;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database {url}: {source}")]
    Metadata { url: String, source: MetadataError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: SocketAddr, source: std::io::Error },
}

/// What every handler shares.
pub(crate) struct AppState {
    config: Config,
    token_key: TokenKey,
    metadata: Metadata,
    store: AssetStore,
    /// The SFU's recordings, in the same store.
    recordings: Recordings,
    cache: AssetCache,
    metrics: Metrics,
    upload_slots: Arc<Semaphore>,
    /// Upload tasks, which outlive a dropped request so they can clean up.
    tasks: TaskTracker,
}

/// A server whose socket is bound, ready to run.
pub struct BoundServer {
    listener: TcpListener,
    state: Arc<AppState>,
}

impl std::fmt::Debug for BoundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundServer").field("address", &self.listener.local_addr().ok()).finish()
    }
}

/// Seconds since the Unix epoch, for the records the server writes.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Opens the storage a configuration names: the metadata database (migrated) and the
/// object store. Signaling and tools use this to read worlds and moderation records.
pub async fn open_storage(config: &Config) -> Result<(Metadata, AssetStore), StartError> {
    let url = config.database_url();
    if let Some(path) = url.strip_prefix("sqlite://").map(|rest| rest.split('?').next().unwrap_or(rest))
        && let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| StartError::Metadata {
            url: redact(&url),
            source: MetadataError::Connect(sqlx::Error::Io(e)),
        })?;
    }
    let metadata = Metadata::connect(&url, config.database_connections)
        .await
        .map_err(|source| StartError::Metadata { url: redact(&url), source })?;
    let store = AssetStore::from_object_store(config.store.open(&config.store_directory()).map_err(StoreError::from)?);
    Ok((metadata, store))
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Checks the configuration, opens storage and binds the listening socket.
pub async fn bind(config: Config) -> Result<BoundServer, StartError> {
    config.validate()?;
    let (metadata, store) = open_storage(&config).await?;
    let now = unix_now();
    metadata
        .ensure_workspace(&config.workspace, now)
        .await
        .map_err(|source| StartError::Metadata { url: redact(&config.database_url()), source })?;
    store.remove_stale_uploads(now - STALE_UPLOAD_SECONDS).await?;
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| StartError::Bind { address: config.listen, source })?;
    let state = Arc::new(AppState {
        token_key: TokenKey::new(config.token_secret.as_bytes()),
        cache: AssetCache::new(config.cache.max_bytes, config.cache.max_object_bytes),
        config,
        metadata,
        recordings: Recordings::new(store.objects()),
        store,
        metrics: Metrics::default(),
        upload_slots: Arc::new(Semaphore::new(CONCURRENT_UPLOADS)),
        tasks: TaskTracker::new(),
    });
    Ok(BoundServer { listener, state })
}

impl BoundServer {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled; then waits for requests and uploads in
    /// flight (at most 30 s for uploads), closes the database and returns.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let BoundServer { listener, state } = self;
        let tasks = state.tasks.clone();
        let metadata = state.metadata.clone();
        let sweeper = tokio::spawn(recordings::sweep(Arc::clone(&state), shutdown.clone()));
        let app = router(state);
        let result = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
        let _ = sweeper.await;
        tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(30), tasks.wait()).await;
        metadata.close().await;
        result
    }
}

fn router(state: Arc<AppState>) -> Router {
    let world_body_limit = state.config.limits.max_world_bytes;
    Router::new()
        .route("/assets/{id}", get(assets::deliver))
        // Uploads enforce their own limit while streaming.
        .route("/v1/assets", post(assets::upload).layer(DefaultBodyLimit::disable()))
        .route("/v1/workspaces/{workspace}/worlds", get(worlds::list_worlds))
        .route("/v1/workspaces/{workspace}/worlds/{name}", get(worlds::load_current))
        .route(
            "/v1/workspaces/{workspace}/worlds/{name}/versions",
            get(worlds::list_versions).post(worlds::publish).layer(DefaultBodyLimit::max(world_body_limit)),
        )
        .route("/v1/workspaces/{workspace}/worlds/{name}/current", put(worlds::set_current))
        .route("/v1/workspaces/{workspace}/recordings", get(recordings::list))
        .route("/v1/workspaces/{workspace}/recordings/{id}", get(recordings::get_one).delete(recordings::delete))
        .route("/v1/workspaces/{workspace}/recordings/{id}/files/{file}", get(recordings::download))
        .route(
            "/v1/workspaces/{workspace}/worlds/{name}/check",
            post(worlds::check).layer(DefaultBodyLimit::max(world_body_limit)),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .fallback(|| async { refusal(StatusCode::NOT_FOUND, "not_found", "there is nothing at this address") })
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

/// Counts every answered request by route template and status class.
async fn count_requests(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    state.metrics.request(route.as_ref().map(MatchedPath::as_str), response.status().as_u16());
    response
}

/// A JSON error body.
pub(crate) fn refusal(status: StatusCode, code: &'static str, message: &str) -> Response {
    ApiError::new(status, code, message).into_response()
}

/// A JSON error body with one more field beside `code` and `message`.
pub(crate) fn refusal_with(
    status: StatusCode,
    code: &'static str,
    message: &str,
    key: &str,
    value: impl Into<serde_json::Value>,
) -> Response {
    ApiError::new(status, code, message).with_detail(key, value).into_response()
}

/// A refusal carried through `Result`s until a handler turns it into its response.
pub(crate) use isoplane_service::http::HttpError as ApiError;

/// An internal failure: logged with its cause, answered without it.
pub(crate) fn internal(context: &str, error: &dyn std::fmt::Display) -> Response {
    ApiError::internal(context, error).into_response()
}

/// Records an admin's write in the workspace's audit log (a failure is logged: the write
/// itself is done).
pub(crate) async fn audit(
    state: &AppState,
    workspace: &str,
    actor: &str,
    action: &str,
    target: String,
    reason: String,
) {
    let entry = AuditEntry {
        id: 0,
        workspace: workspace.to_owned(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        target,
        reason,
        outcome: AuditEntry::DONE.to_owned(),
        detail: String::new(),
        created_at: unix_now(),
    };
    if let Err(error) = state.metadata.record_audit(&entry).await {
        tracing::error!("cannot write the audit log: {error}");
    }
}

/// How much a request's token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Any member of the workspace.
    Read,
    /// Admins of the workspace: listed in its admins table, or role `admin` in the token
    /// unless demoted inside Isoplane (see `Metadata::admin_status`). Builders too.
    Write,
    /// Admins only, not builders (recordings).
    Admin,
}

/// Checks the bearer token for `workspace`: signature, expiry, workspace, role and bans.
pub(crate) async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    workspace: &str,
    access: Access,
) -> Result<JoinClaims, ApiError> {
    let refuse = |status, code, message: &str| {
        state.metrics.auth_failures.inc();
        Err(ApiError::new(status, code, message))
    };
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return refuse(StatusCode::UNAUTHORIZED, "missing_token", "send `Authorization: Bearer TOKEN`");
    };
    let Some(token) = value.strip_prefix("Bearer ") else {
        return refuse(StatusCode::UNAUTHORIZED, "missing_token", "send `Authorization: Bearer TOKEN`");
    };
    let now = u64::try_from(unix_now()).unwrap_or(0);
    let claims: JoinClaims = match state.token_key.verify(token.trim(), now) {
        Ok(claims) => claims,
        Err(error) => return refuse(StatusCode::UNAUTHORIZED, "invalid_token", &error.to_string()),
    };
    if claims.workspace != workspace {
        return refuse(StatusCode::FORBIDDEN, "wrong_workspace", "the token is for another workspace");
    }
    let banned = state.metadata.active_ban(workspace, &claims.sub, unix_now()).await;
    match banned {
        Ok(None) => {}
        Ok(Some(_)) => return refuse(StatusCode::FORBIDDEN, "banned", "this user is banned from the workspace"),
        Err(error) => return Err(ApiError::internal("reading bans", &error)),
    }
    // Every write here changes worlds or adds their images: builders may, by their token.
    if access == Access::Admin || (access == Access::Write && claims.role != Role::Builder) {
        // The rule signaling applies too: the admins table, or the token's role unless an
        // admin demoted the user inside Isoplane (a token grant is stored on first use).
        let token_says_admin = claims.role == Role::Admin;
        match state.metadata.admin_status(workspace, &claims.sub, token_says_admin, unix_now()).await {
            Ok(true) => {}
            Ok(false) => {
                let who = if access == Access::Admin { "admins" } else { "admins and builders" };
                return refuse(StatusCode::FORBIDDEN, "not_admin", &format!("only {who} of the workspace may do this"));
            }
            Err(error) => return Err(ApiError::internal("reading admins", &error)),
        }
    }
    Ok(claims)
}

/// The workspace in a URL must be the one this server serves.
pub(crate) fn check_workspace(state: &AppState, workspace: &str) -> Result<(), ApiError> {
    if workspace == state.config.workspace {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_workspace", "this server does not serve that workspace"))
    }
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if let Err(error) = state.metadata.ping().await {
        tracing::warn!("not ready: database: {error}");
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", "the database does not answer");
    }
    if let Err(error) = state.store.ping().await {
        tracing::warn!("not ready: object store: {error}");
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "the object store does not answer");
    }
    ([(header::CONTENT_TYPE, "application/json")], "{\"ready\":true}").into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    // The cache knows its size; it is read at scrape time.
    state.metrics.cache_bytes.set(i64::try_from(state.cache.held_bytes()).unwrap_or(i64::MAX));
    isoplane_service::http::metrics_response(state.metrics.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(redact("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact("sqlite://data/assets.db"), "sqlite://data/assets.db");
    }
}
