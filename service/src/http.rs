//! The HTTP error every service answers with: a status and a JSON body
//! `{"error": {"code": "...", "message": "..."}}`, where `code` is stable for programs and
//! `message` says what happened and what to do. Internal failures are logged with their
//! cause and answered without it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Fields beside `code` and `message` (e.g. the current version on a conflict).
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl HttpError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> HttpError {
        HttpError { status, code, message: message.into(), details: serde_json::Map::new() }
    }

    /// The same error with `key` added to its body.
    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> HttpError {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// A failure of the server's own: `context` and `cause` go to the log, the client
    /// gets a 500 that reveals neither.
    pub fn internal(context: &str, cause: &dyn std::fmt::Display) -> HttpError {
        tracing::error!("{context}: {cause}");
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the server failed; try again later")
    }

    /// 503: the service is stopping.
    pub fn shutting_down() -> HttpError {
        HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down")
    }

    /// The JSON body alone.
    pub fn body(&self) -> serde_json::Value {
        let mut error = serde_json::Map::new();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.clone().into());
        error.extend(self.details.clone());
        serde_json::json!({ "error": error })
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for HttpError {}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// `/metrics`' answer: the registry's text with Prometheus' content type.
pub fn metrics_response(text: String) -> Response {
    ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_error_answers_with_its_status_and_a_json_body() {
        let response = HttpError::new(StatusCode::NOT_FOUND, "no_room", "no such room is open").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let bytes = axum::body::to_bytes(response.into_body(), 4096).await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!(body, serde_json::json!({"error": {"code": "no_room", "message": "no such room is open"}}));
    }

    #[test]
    fn details_go_beside_the_code_and_message() {
        let error = HttpError::new(StatusCode::CONFLICT, "stale", "reload").with_detail("current", 3);
        assert_eq!(error.body(), serde_json::json!({"error": {"code": "stale", "message": "reload", "current": 3}}));
    }

    #[tokio::test]
    async fn an_internal_error_hides_its_cause() {
        let response = HttpError::internal("reading the database", &"password authentication failed").into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), 4096).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("password"), "{text}");
        assert!(text.contains("\"internal\""), "{text}");
    }
}
