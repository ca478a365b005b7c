//! What a private key object says of itself: its security attributes, provenance included
//! (`CKA_LOCAL`, `CKA_ALWAYS_SENSITIVE`, `CKA_NEVER_EXTRACTABLE`).

use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::Session;

use super::HsmError;
use super::objects::find_private;

/// The security attributes of a private key object. An attribute the token does not report
/// counts as the unsafe value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttributes {
    pub token: bool,
    pub private: bool,
    pub sensitive: bool,
    pub extractable: bool,
    /// `CKA_LOCAL`: generated in the token (not imported or unwrapped into it).
    pub local: bool,
    pub always_sensitive: bool,
    pub never_extractable: bool,
    pub sign: bool,
    pub decrypt: bool,
    pub unwrap: bool,
    pub derive: bool,
}

/// A private key object found by listing the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKey {
    /// `CKA_ID`.
    pub id: Vec<u8>,
    pub label: String,
    pub attributes: KeyAttributes,
}

const TYPES: [AttributeType; 11] = [
    AttributeType::Token,
    AttributeType::Private,
    AttributeType::Sensitive,
    AttributeType::Extractable,
    AttributeType::Local,
    AttributeType::AlwaysSensitive,
    AttributeType::NeverExtractable,
    AttributeType::Sign,
    AttributeType::Decrypt,
    AttributeType::Unwrap,
    AttributeType::Derive,
];

/// The attributes of the private key object `handle`.
pub(super) fn of_handle(s: &Session, handle: ObjectHandle) -> Result<KeyAttributes, HsmError> {
    let attrs = s
        .get_attributes(handle, &TYPES)
        .map_err(HsmError::call("C_GetAttributeValue"))?;
    let mut k = KeyAttributes {
        token: false,
        private: false,
        sensitive: false,
        extractable: true,
        local: false,
        always_sensitive: false,
        never_extractable: false,
        sign: false,
        decrypt: true,
        unwrap: true,
        derive: true,
    };
    for a in attrs {
        match a {
            Attribute::Token(v) => k.token = v,
            Attribute::Private(v) => k.private = v,
            Attribute::Sensitive(v) => k.sensitive = v,
            Attribute::Extractable(v) => k.extractable = v,
            Attribute::Local(v) => k.local = v,
            Attribute::AlwaysSensitive(v) => k.always_sensitive = v,
            Attribute::NeverExtractable(v) => k.never_extractable = v,
            Attribute::Sign(v) => k.sign = v,
            Attribute::Decrypt(v) => k.decrypt = v,
            Attribute::Unwrap(v) => k.unwrap = v,
            Attribute::Derive(v) => k.derive = v,
            _ => {}
        }
    }
    Ok(k)
}

/// The attributes of the private key `id`.
pub(super) fn private_attributes(s: &Session, id: &[u8]) -> Result<KeyAttributes, HsmError> {
    let handle = find_private(s, id)?;
    of_handle(s, handle)
}
