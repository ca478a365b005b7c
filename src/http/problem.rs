//! RFC 9457 problem responses with a stable `code`, the one error type every handler returns, and a
//! JSON extractor whose rejections use the same format.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::service::ServiceError;
use crate::signing::SignError;

/// An error as the caller sees it.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub retry_after: Option<u64>,
    /// Extension members (RFC 9457 3.2).
    pub members: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
            members: None,
        }
    }

    pub fn with_member(mut self, name: &str, value: serde_json::Value) -> Self {
        self.members
            .get_or_insert_default()
            .insert(name.to_string(), value);
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let mut body = json!({
            "type": format!("https://signet.dev/problems/{}", self.code.replace('_', "-")),
            "title": title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        for (k, v) in self.members.into_iter().flat_map(|m| *m) {
            body[k] = v;
        }
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        use StatusCode as S;
        match e {
            ServiceError::KeySetNotFound(_) => {
                Problem::new(S::NOT_FOUND, "key_set_not_found", e.to_string())
            }
            ServiceError::WrongProfile { .. } => {
                Problem::new(S::BAD_REQUEST, "wrong_profile", e.to_string())
            }
            ServiceError::Policy(p) => Problem::new(S::BAD_REQUEST, p.code(), p.to_string()),
            ServiceError::BadRequest { code, message } => {
                Problem::new(S::BAD_REQUEST, code, message)
            }
            ServiceError::NotFound { code, message } => Problem::new(S::NOT_FOUND, code, message),
            ServiceError::Conflict { code, message } => Problem::new(S::CONFLICT, code, message),
            ServiceError::NoActiveKey(_) => {
                Problem::new(S::SERVICE_UNAVAILABLE, "no_active_key", e.to_string())
                    .with_retry_after(5)
            }
            ServiceError::Sign(s) => s.into(),
            // A change another replica committed first (the transaction re-checked and refused).
            ServiceError::Store(crate::keys::StoreError::Conflict(m)) => {
                Problem::new(S::CONFLICT, "concurrent_change", m)
            }
            ServiceError::Store(s) => {
                tracing::error!(error = %s, "store failure");
                Problem::new(
                    S::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the metadata store is unavailable",
                )
                .with_retry_after(5)
            }
            ServiceError::Start(m) => Problem::new(S::INTERNAL_SERVER_ERROR, "internal", m),
        }
    }
}

impl From<SignError> for Problem {
    fn from(e: SignError) -> Self {
        use StatusCode as S;
        // Internal detail goes to the log; the caller gets a stable code and a short reason.
        tracing::warn!(error = %e, "signing failed");
        match e {
            SignError::Unavailable(_) => Problem::new(
                S::SERVICE_UNAVAILABLE,
                "hsm_unavailable",
                "the key's HSM is unavailable",
            )
            .with_retry_after(2),
            SignError::Busy => Problem::new(
                S::SERVICE_UNAVAILABLE,
                "hsm_busy",
                "every HSM session is busy",
            )
            .with_retry_after(1),
            SignError::Timeout => Problem::new(
                S::SERVICE_UNAVAILABLE,
                "hsm_timeout",
                "the HSM did not answer in time",
            )
            .with_retry_after(2),
            SignError::SelfCheckFailed(_) => Problem::new(
                S::INTERNAL_SERVER_ERROR,
                "signature_self_check_failed",
                "the HSM returned a signature that does not verify; it was withheld",
            ),
            SignError::Failed(_) | SignError::Key(_) => {
                Problem::new(S::BAD_GATEWAY, "hsm_error", "the HSM refused the operation")
            }
        }
    }
}

/// `Json<T>` whose rejections are problems: 400 `malformed_json`, 400 `invalid_request` (wrong
/// shape), 413 `payload_too_large`, 415 `unsupported_media_type`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(r: JsonRejection) -> Problem {
    use StatusCode as S;
    match r {
        JsonRejection::JsonDataError(e) => {
            Problem::new(S::BAD_REQUEST, "invalid_request", e.body_text())
        }
        JsonRejection::JsonSyntaxError(e) => {
            Problem::new(S::BAD_REQUEST, "malformed_json", e.body_text())
        }
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ),
        other if other.status() == S::PAYLOAD_TOO_LARGE => Problem::new(
            S::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        ),
        other => Problem::new(S::BAD_REQUEST, "invalid_request", other.body_text()),
    }
}
