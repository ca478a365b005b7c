//! Every problem `code` the API answers with, in one table: its HTTP status, and the
//! `Retry-After` seconds of the 503s. `Problem::new` takes the status from here, so a code and its
//! status cannot drift apart between routes; `tests/errors.rs` reaches each code through the API.
//!
//! The RFC 9421 codes of `sign/http` come from `signing::http_sig` (`HttpSigError::code`), the
//! profile codes from `signing::profile` (`PolicyError::code`); the rest are named where
//! `http::problem` maps a service error, or where the HTTP layer refuses a request itself.

use axum::http::StatusCode;

/// One problem code: its status and, for a 503, the `Retry-After` in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemCode {
    pub code: &'static str,
    pub status: StatusCode,
    pub(crate) retry_after: Option<u64>,
}

const fn c(code: &'static str, status: StatusCode) -> ProblemCode {
    ProblemCode {
        code,
        status,
        retry_after: None,
    }
}

const fn retry(code: &'static str, retry_after: u64) -> ProblemCode {
    ProblemCode {
        code,
        status: StatusCode::SERVICE_UNAVAILABLE,
        retry_after: Some(retry_after),
    }
}

use StatusCode as S;

/// The table. Order: as README's table of codes, then the RFC 9421 codes of `sign/http`.
pub const CODES: &[ProblemCode] = &[
    // Callers (`http::auth`, `http::quota`) and permission.
    c("unauthorized", S::UNAUTHORIZED),
    c("invalid_token", S::UNAUTHORIZED),
    c("unknown_client_certificate", S::UNAUTHORIZED),
    c("ambiguous_client_certificate", S::UNAUTHORIZED),
    c("conflicting_credentials", S::UNAUTHORIZED),
    // 429 carries the bucket's own Retry-After.
    c("rate_limited", S::TOO_MANY_REQUESTS),
    c("forbidden", S::FORBIDDEN),
    // Routes and bodies.
    c("key_set_not_found", S::NOT_FOUND),
    c("not_found", S::NOT_FOUND),
    c("method_not_allowed", S::METHOD_NOT_ALLOWED),
    c("malformed_json", S::BAD_REQUEST),
    c("invalid_request", S::BAD_REQUEST),
    c("payload_too_large", S::PAYLOAD_TOO_LARGE),
    c("unsupported_media_type", S::UNSUPPORTED_MEDIA_TYPE),
    // Profiles (`signing::profile`).
    c("claim_missing", S::BAD_REQUEST),
    c("claim_invalid", S::BAD_REQUEST),
    c("claim_forbidden", S::BAD_REQUEST),
    c("issuer_mismatch", S::BAD_REQUEST),
    c("lifetime_exceeded", S::BAD_REQUEST),
    c("iat_out_of_range", S::BAD_REQUEST),
    c("created_out_of_range", S::BAD_REQUEST),
    c("header_forbidden", S::BAD_REQUEST),
    c("header_not_allowed", S::BAD_REQUEST),
    c("typ_mismatch", S::BAD_REQUEST),
    c("wrong_profile", S::BAD_REQUEST),
    c("payload_not_base64url", S::BAD_REQUEST),
    // Caller-built JWS (`sign/compact`, `signing::compact`) and key sets with several profiles.
    c("malformed_signing_input", S::BAD_REQUEST),
    c("payload_not_object", S::BAD_REQUEST),
    c("duplicate_member", S::BAD_REQUEST),
    c("alg_mismatch", S::BAD_REQUEST),
    c("profile_unmatched", S::BAD_REQUEST),
    c("kid_not_active", S::CONFLICT),
    // The HSM, the store, the deadline.
    retry("hsm_unavailable", 2),
    retry("hsm_busy", 1),
    retry("hsm_timeout", 2),
    retry("no_active_key", 5),
    retry("store_unavailable", 5),
    retry("key_view_stale", 5),
    retry("request_timeout", 1),
    c("hsm_error", S::BAD_GATEWAY),
    c("signature_self_check_failed", S::INTERNAL_SERVER_ERROR),
    // A corrupt stored key, or a bug: the detail is in the log.
    c("internal", S::INTERNAL_SERVER_ERROR),
    // Operator changes.
    c("key_not_found", S::NOT_FOUND),
    c("hsm_key_not_found", S::NOT_FOUND),
    c("hsm_key_ambiguous", S::CONFLICT),
    c("min_publish_not_met", S::CONFLICT),
    c("no_next_key", S::CONFLICT),
    c("already_revoked", S::CONFLICT),
    c("already_destroyed", S::CONFLICT),
    c("no_pending_destruction", S::CONFLICT),
    c("key_in_use", S::CONFLICT),
    c("key_exists", S::CONFLICT),
    c("concurrent_change", S::CONFLICT),
    c("reason_required", S::BAD_REQUEST),
    c("activate_at_in_past", S::BAD_REQUEST),
    c("invalid_time", S::BAD_REQUEST),
    c("invalid_id", S::BAD_REQUEST),
    c("key_not_protected", S::BAD_REQUEST),
    c("key_type_mismatch", S::BAD_REQUEST),
    c("key_material_exposed", S::BAD_REQUEST),
    c("audit_chain_broken", S::CONFLICT),
    // The two-person rule (`[approvals]`, `/v1/approvals/{id}/approve|reject`).
    c("approval_not_found", S::NOT_FOUND),
    c("self_approval", S::FORBIDDEN),
    c("approval_expired", S::CONFLICT),
    c("approval_decided", S::CONFLICT),
    c("approval_stale", S::CONFLICT),
    // Certificates of keys (`PUT .../certificate`, and rotation under `require_certificate`).
    c("certificate_key_mismatch", S::BAD_REQUEST),
    c("certificate_invalid", S::BAD_REQUEST),
    c("certificate_expired", S::BAD_REQUEST),
    c("certificate_required", S::CONFLICT),
    // RFC 9421 requests `sign/http` cannot build a signature base from (`HttpSigError::code`).
    c("bad_body_base64", S::BAD_REQUEST),
    c("bad_label", S::BAD_REQUEST),
    c("bad_signature_parameter", S::BAD_REQUEST),
    c("expires_not_after_created", S::BAD_REQUEST),
    c("bad_component", S::BAD_REQUEST),
    c("duplicate_component", S::BAD_REQUEST),
    c("unknown_derived_component", S::BAD_REQUEST),
    c("signature_params_covered", S::BAD_REQUEST),
    c("unknown_component_parameter", S::BAD_REQUEST),
    c("invalid_component_parameter", S::BAD_REQUEST),
    c("trailers_unsupported", S::BAD_REQUEST),
    c("component_not_applicable", S::BAD_REQUEST),
    c("request_required", S::BAD_REQUEST),
    c("missing_field", S::BAD_REQUEST),
    c("missing_message_part", S::BAD_REQUEST),
    c("invalid_target_uri", S::BAD_REQUEST),
    c("invalid_status", S::BAD_REQUEST),
    c("non_ascii_value", S::BAD_REQUEST),
    c("missing_query_param", S::BAD_REQUEST),
    c("ambiguous_query_param", S::BAD_REQUEST),
    c("not_a_dictionary", S::BAD_REQUEST),
    c("missing_dictionary_key", S::BAD_REQUEST),
    c("sf_parse_failed", S::BAD_REQUEST),
    c("content_digest_without_body", S::BAD_REQUEST),
    c("content_digest_invalid", S::BAD_REQUEST),
    c("content_digest_mismatch", S::BAD_REQUEST),
];

/// The table's entry for `code`, or the `internal` one (with a log line) for a code missing from
/// the table: a bug that `tests/errors.rs` is there to catch.
pub(super) fn lookup(code: &'static str) -> ProblemCode {
    if let Some(entry) = CODES.iter().find(|c| c.code == code) {
        return *entry;
    }
    tracing::error!(
        code,
        "problem code missing from http::codes::CODES; answering 500"
    );
    ProblemCode {
        code,
        status: StatusCode::INTERNAL_SERVER_ERROR,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for c in CODES {
            assert!(seen.insert(c.code), "{} listed twice", c.code);
            assert!(
                c.code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                c.code
            );
            assert_eq!(
                c.retry_after.is_some(),
                c.status == StatusCode::SERVICE_UNAVAILABLE,
                "{}: every 503 and only a 503 carries Retry-After",
                c.code
            );
        }
    }
}
