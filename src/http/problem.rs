//! RFC 9457 problem responses with a stable `code`, the one error type every handler returns, the
//! one mapping of service errors to codes, and the JSON body and query-string extractors whose
//! rejections use the same format. Statuses come from the table in `http::codes`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::codes;
use crate::keys::StoreError;
use crate::service::{ApprovalRefusal, Invalid, Refusal, ServiceError};
use crate::signing::SignError;
use crate::signing::x509::ChainError;
use crate::support::Chain;

/// An error as the caller sees it.
#[derive(Debug)]
pub(crate) struct Problem {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) detail: String,
    pub(crate) retry_after: Option<u64>,
    /// Extension members (RFC 9457 3.2).
    pub(crate) members: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl Problem {
    /// A problem with `code`, its status (and `Retry-After`) from `http::codes`.
    pub(crate) fn new(code: &'static str, detail: impl Into<String>) -> Self {
        let entry = codes::lookup(code);
        Self {
            status: entry.status,
            code,
            detail: detail.into(),
            retry_after: entry.retry_after,
            members: None,
        }
    }

    pub(crate) fn with_member(mut self, name: &str, value: serde_json::Value) -> Self {
        self.members
            .get_or_insert_default()
            .insert(name.to_string(), value);
        self
    }

    pub(crate) fn with_retry_after(mut self, seconds: u64) -> Self {
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

/// Domain to HTTP, in one place: each kind of service error gets its code. Internal detail (the
/// causes of a 5xx) goes to the log, not to the caller.
impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Sign(s) => s.into(),
            ServiceError::Store(s) => store_problem(s),
            ServiceError::KeyUnusable { .. } | ServiceError::Internal(_) => internal(&e),
            ServiceError::KidNotActive {
                ref active_kid,
                ref next_kid,
                ..
            } => {
                let (active, next) = (json!(active_kid), json!(next_kid));
                Problem::new("kid_not_active", e.to_string())
                    .with_member("active_kid", active)
                    .with_member("next_kid", next)
            }
            e => Problem::new(code(&e), e.to_string()),
        }
    }
}

/// The code of a service error the caller can act on.
fn code(e: &ServiceError) -> &'static str {
    match e {
        ServiceError::KeySetNotFound(_) => "key_set_not_found",
        ServiceError::Forbidden { .. } => "forbidden",
        ServiceError::WrongProfile { .. } => "wrong_profile",
        ServiceError::Policy(p) => p.code(),
        ServiceError::Message(m) => m.code(),
        ServiceError::PayloadNotBase64url(_) => "payload_not_base64url",
        ServiceError::Transit(_) => "invalid_request",
        ServiceError::Compact(c) => c.code(),
        ServiceError::ProfileUnmatched(_) => "profile_unmatched",
        ServiceError::KidNotActive { .. } => "kid_not_active",
        ServiceError::NoActiveKey(_) => "no_active_key",
        ServiceError::KeyNotFound { .. } => "key_not_found",
        ServiceError::HsmKeyNotFound { .. } => "hsm_key_not_found",
        ServiceError::HsmKeyAmbiguous { .. } => "hsm_key_ambiguous",
        ServiceError::Refused(r) => refusal_code(r),
        ServiceError::Approval(a) => match a {
            ApprovalRefusal::NotFound(_) => "approval_not_found",
            ApprovalRefusal::SelfApproval(_) => "self_approval",
            ApprovalRefusal::Expired { .. } => "approval_expired",
            ApprovalRefusal::Decided { .. } => "approval_decided",
            ApprovalRefusal::Stale { .. } => "approval_stale",
        },
        ServiceError::Certificate(c) => match c {
            ChainError::KeyMismatch(_) => "certificate_key_mismatch",
            ChainError::Invalid(_) => "certificate_invalid",
            ChainError::Expired { .. } => "certificate_expired",
        },
        ServiceError::Invalid(i) => invalid_code(i),
        ServiceError::Sign(_) => "hsm_error",
        ServiceError::Store(_) | ServiceError::StoreUnavailable { .. } => "store_unavailable",
        ServiceError::KeyViewStale { .. } => "key_view_stale",
        ServiceError::KeyUnusable { .. } | ServiceError::Internal(_) => "internal",
    }
}

/// A corrupt stored key or a bug: 500, the detail in the log only.
fn internal(e: &(dyn std::error::Error + 'static)) -> Problem {
    tracing::error!(error = %Chain(e), "internal error");
    Problem::new("internal", "internal error; see the service log")
}

fn refusal_code(r: &Refusal) -> &'static str {
    match r {
        Refusal::MinPublishNotMet { .. } => "min_publish_not_met",
        Refusal::NoNextKey(_) => "no_next_key",
        Refusal::AlreadyRevoked(_) => "already_revoked",
        Refusal::AlreadyDestroyed(_) => "already_destroyed",
        Refusal::NoPendingDestruction(_) => "no_pending_destruction",
        Refusal::KeyInUse { .. } => "key_in_use",
        Refusal::KeyExists(_) => "key_exists",
        Refusal::CertificateRequired(_) => "certificate_required",
    }
}

fn invalid_code(i: &Invalid) -> &'static str {
    match i {
        Invalid::ReasonRequired => "reason_required",
        Invalid::ActivateAtInPast => "activate_at_in_past",
        Invalid::Id(_) => "invalid_id",
        Invalid::KeyNotProtected => "key_not_protected",
        Invalid::KeyTypeMismatch(_) => "key_type_mismatch",
        Invalid::KeyMaterialExposed { .. } => "key_material_exposed",
        Invalid::Csr(_) => "invalid_request",
    }
}

fn store_problem(e: StoreError) -> Problem {
    match e {
        // A change another replica committed first (the transaction re-checked and refused).
        StoreError::Conflict(m) => Problem::new("concurrent_change", m),
        StoreError::Corrupt(_) => internal(&e),
        e => {
            tracing::error!(error = %Chain(&e), "store failure");
            Problem::new("store_unavailable", "the metadata store is unavailable")
        }
    }
}

impl From<SignError> for Problem {
    fn from(e: SignError) -> Self {
        // Internal detail goes to the log; the caller gets a stable code and a short reason.
        tracing::warn!(error = %Chain(&e), "signing failed");
        match e {
            SignError::Unavailable(_) => {
                Problem::new("hsm_unavailable", "the key's HSM is unavailable")
            }
            SignError::Busy => Problem::new("hsm_busy", "every HSM session is busy"),
            SignError::Timeout => Problem::new("hsm_timeout", "the HSM did not answer in time"),
            SignError::SelfCheckFailed(_) => Problem::new(
                "signature_self_check_failed",
                "the HSM returned a signature that does not verify; it was withheld",
            ),
            SignError::Failed(_) => Problem::new("hsm_error", "the HSM refused the operation"),
            SignError::Internal(_) => {
                Problem::new("internal", "internal error; see the service log")
            }
        }
    }
}

/// `Json<T>` whose rejections are problems: 400 `malformed_json`, 400 `invalid_request` (wrong
/// shape), 413 `payload_too_large`, 415 `unsupported_media_type`.
pub(crate) struct ApiJson<T>(pub T);

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
    match r {
        JsonRejection::JsonDataError(e) => Problem::new("invalid_request", e.body_text()),
        JsonRejection::JsonSyntaxError(e) => Problem::new("malformed_json", e.body_text()),
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            "unsupported_media_type",
            "send Content-Type: application/json",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new("payload_too_large", "the request body is too large")
        }
        other => Problem::new("invalid_request", other.body_text()),
    }
}

/// `Query<T>` whose rejection is a problem: 400 `invalid_request` naming what did not parse.
pub(crate) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => Err(query_problem(rejection)),
        }
    }
}

fn query_problem(r: QueryRejection) -> Problem {
    Problem::new(
        "invalid_request",
        format!("query string: {}", r.body_text()),
    )
}
