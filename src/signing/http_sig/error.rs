//! The one error type of the RFC 9421 layer and its stable, greppable codes.
//!
//! Owns nothing but the vocabulary of failure: each variant says which input was wrong and why,
//! `code()` gives the machine-readable name the HTTP layer puts in its problem `code` member.
//! Knows neither axum nor cryptoki.

/// Why a signature base could not be built, or a signature could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum HttpSigError {
    /// The request JSON did not have the documented shape.
    #[error("invalid sign/http request: {0}")]
    InvalidRequest(String),
    /// `message.body` (or `request.body`) is not standard base64 with padding.
    #[error("message body is not valid base64")]
    BadBodyBase64,
    /// The signature label is not an sf-key (lower-case letters, digits, `_-.*`).
    #[error("label {0:?} is not a valid structured-field key")]
    BadLabel(String),
    /// `nonce`, `tag`, `keyid` or `alg` cannot be an sf-string (printable ASCII only).
    #[error("signature parameter `{0}` must be printable ASCII")]
    BadSignatureParameter(&'static str),
    /// `expires` is not after `created`.
    #[error("expires ({expires}) must be after created ({created})")]
    ExpiresNotAfterCreated { created: i64, expires: i64 },
    /// A covered entry is not a component identifier.
    #[error("bad component identifier {0:?}: {1}")]
    BadComponent(String, String),
    /// The same component identifier (name and parameters) is covered twice.
    #[error("component {0} is covered more than once")]
    DuplicateComponent(String),
    /// A derived component name that RFC 9421 section 2.2 does not define.
    #[error("unknown derived component {0:?}")]
    UnknownDerivedComponent(String),
    /// `@signature-params` may not be listed as a covered component.
    #[error("@signature-params cannot be a covered component")]
    SignatureParamsCovered,
    /// A component parameter RFC 9421 does not define.
    #[error("unknown component parameter `{param}` on {component}")]
    UnknownComponentParameter { component: String, param: String },
    /// A defined parameter used where it does not apply or with a value of the wrong type.
    #[error("invalid component parameter on {component}: {reason}")]
    InvalidComponentParameter { component: String, reason: String },
    /// The `tr` (trailer) parameter: Signet signs no trailers.
    #[error("trailer fields (`tr`) are not supported: {0}")]
    TrailersUnsupported(String),
    /// `@status` on a request, or a request-only derived component on a response without `;req`.
    #[error("{0} does not apply to this message: {1}")]
    ComponentNotApplicable(String, &'static str),
    /// A `;req` component, but no related request was given.
    #[error("{0} needs the related request, but none was given")]
    RequestRequired(String),
    /// A covered field is absent from the message.
    #[error("covered field {0:?} is not in the message")]
    MissingField(String),
    /// `method`, `target_uri` or `status` is needed by a covered component but absent.
    #[error("{component} needs `{part}`, which the message does not have")]
    MissingMessagePart {
        component: String,
        part: &'static str,
    },
    /// `target_uri` is not an absolute `scheme://authority[/path][?query]` URI.
    #[error("target_uri is not an absolute URI: {0}")]
    InvalidTargetUri(String),
    /// `status` is not a three-digit status code.
    #[error("status {0} is not a three-digit status code")]
    InvalidStatus(u16),
    /// A component value holds a non-ASCII or control character.
    #[error("value of {0} contains a non-ASCII or control character")]
    NonAsciiValue(String),
    /// The named query parameter is not in the query.
    #[error("query parameter {0:?} is not in the target URI")]
    MissingQueryParam(String),
    /// The named query parameter occurs more than once (RFC 9421 section 2.2.8 forbids covering it).
    #[error("query parameter {0:?} occurs more than once; cover @query instead")]
    AmbiguousQueryParam(String),
    /// `key` on a field whose value is not a structured-field dictionary.
    #[error("field {0:?} is not a structured-field dictionary")]
    NotADictionary(String, #[source] sfv::Error),
    /// `key` names a member the dictionary field does not have.
    #[error("dictionary field {field:?} has no member {key:?}")]
    MissingDictionaryKey { field: String, key: String },
    /// `sf`: the field value is no structured field of any type.
    #[error("field {0:?} is not a valid structured field")]
    StructuredFieldParse(String, #[source] sfv::Error),
    /// `content_digest` was requested (or `content-digest` covered) with no body to hash.
    #[error("content digest requested but the message has no body")]
    ContentDigestWithoutBody,
    /// A `Content-Digest` field in the message is not a dictionary of byte sequences.
    #[error("Content-Digest field is malformed: {0}")]
    ContentDigestInvalid(String),
    /// A `Content-Digest` entry does not match the body.
    #[error("Content-Digest {0} does not match the body")]
    ContentDigestMismatch(&'static str),
    /// Verify side: the Signature-Input value is not a dictionary of well-formed inner lists.
    #[error("Signature-Input is malformed: {0}")]
    SignatureInputInvalid(String),
    /// Verify side: the Signature value is not a dictionary of byte sequences.
    #[error("Signature is malformed: {0}")]
    SignatureFieldInvalid(String),
    /// Verify side: no signature with the requested label (or no signature at all).
    #[error("no signature labelled {0:?}")]
    LabelNotFound(String),
    /// Verify side: several signatures and no label to choose one.
    #[error("several signatures ({0}); name the label to verify")]
    AmbiguousLabel(String),
    /// Verify side: the signature does not verify over the rebuilt base.
    #[error("signature {0:?} does not verify")]
    SignatureInvalid(String),
    /// Verify side (JWKS): the signature has no `keyid`, or the JWKS has no key with that kid.
    #[error("no key for keyid {0:?} in the JWKS")]
    UnknownKey(Option<String>),
    /// Verify side (JWKS): the `alg` parameter names an algorithm other than the key's.
    #[error("signature alg `{alg}` does not match the key's alg `{key_alg}`")]
    AlgorithmMismatch { alg: String, key_alg: String },
    /// Verify side (JWKS): neither the `alg` parameter nor the JWK names an algorithm Signet
    /// verifies.
    #[error("unsupported or unknown signature algorithm {0:?}")]
    UnsupportedAlgorithm(Option<String>),
    /// Verify side (JWKS): the JWK is not a public key usable with its algorithm.
    #[error("JWK {kid:?} is unusable: {reason}")]
    BadKey { kid: String, reason: String },
}

impl HttpSigError {
    /// The stable `snake_case` code of this error (the problem `code` member).
    #[must_use]
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::BadBodyBase64 => "bad_body_base64",
            Self::BadLabel(_) => "bad_label",
            Self::BadSignatureParameter(_) => "bad_signature_parameter",
            Self::ExpiresNotAfterCreated { .. } => "expires_not_after_created",
            Self::BadComponent(..) => "bad_component",
            Self::DuplicateComponent(_) => "duplicate_component",
            Self::UnknownDerivedComponent(_) => "unknown_derived_component",
            Self::SignatureParamsCovered => "signature_params_covered",
            Self::UnknownComponentParameter { .. } => "unknown_component_parameter",
            Self::InvalidComponentParameter { .. } => "invalid_component_parameter",
            Self::TrailersUnsupported(_) => "trailers_unsupported",
            Self::ComponentNotApplicable(..) => "component_not_applicable",
            Self::RequestRequired(_) => "request_required",
            Self::MissingField(_) => "missing_field",
            Self::MissingMessagePart { .. } => "missing_message_part",
            Self::InvalidTargetUri(_) => "invalid_target_uri",
            Self::InvalidStatus(_) => "invalid_status",
            Self::NonAsciiValue(_) => "non_ascii_value",
            Self::MissingQueryParam(_) => "missing_query_param",
            Self::AmbiguousQueryParam(_) => "ambiguous_query_param",
            Self::NotADictionary(..) => "not_a_dictionary",
            Self::MissingDictionaryKey { .. } => "missing_dictionary_key",
            Self::StructuredFieldParse(..) => "sf_parse_failed",
            Self::ContentDigestWithoutBody => "content_digest_without_body",
            Self::ContentDigestInvalid(_) => "content_digest_invalid",
            Self::ContentDigestMismatch(_) => "content_digest_mismatch",
            Self::SignatureInputInvalid(_) => "signature_input_invalid",
            Self::SignatureFieldInvalid(_) => "signature_field_invalid",
            Self::LabelNotFound(_) => "label_not_found",
            Self::AmbiguousLabel(_) => "ambiguous_label",
            Self::SignatureInvalid(_) => "signature_invalid",
            Self::UnknownKey(_) => "unknown_key",
            Self::AlgorithmMismatch { .. } => "algorithm_mismatch",
            Self::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Self::BadKey { .. } => "bad_key",
        }
    }
}
