//! The JSON error replies (`{"v":1,"error":{"code","message"}}`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coffer_vault_proto::wire::{ErrorBody, ErrorReply, WIRE_VERSION};

/// An error reply: status, stable code, message that says what to do.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message (never secrets).
    pub message: String,
    /// For `wrong_password`.
    pub guesses_left: Option<u32>,
    /// For `rate_limited`.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// A new error without extra fields.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            guesses_left: None,
            retry_after_secs: None,
        }
    }
    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// 401 with `code`.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
    /// 500 without detail to the client (details go to the log).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorReply {
            v: WIRE_VERSION,
            error: ErrorBody {
                code: self.code.to_string(),
                message: self.message,
                guesses_left: self.guesses_left,
                retry_after_secs: self.retry_after_secs,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(v) = self
            .retry_after_secs
            .and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
