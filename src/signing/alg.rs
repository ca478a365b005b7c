//! Signature algorithms by their JOSE (RFC 7518, RFC 8037, RFC 9864) and RFC 9421 names, and the key
//! type each one needs.

use std::fmt;

/// A JWS algorithm Signet can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32.
    Ps256,
    /// RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48 (`fapi = false` only).
    Ps384,
    /// RSASSA-PSS, SHA-512, MGF1-SHA-512, salt 64 (RFC 9421 `rsa-pss-sha512`).
    Ps512,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (`fapi = false` only).
    Rs256,
    /// ECDSA P-256 with SHA-256, signature r||s.
    Es256,
    /// ECDSA P-384 with SHA-384, signature r||s (`fapi = false` only).
    Es384,
    /// Ed25519 under the polymorphic name `EdDSA` (RFC 8037).
    EdDsa,
    /// Ed25519 under its fully-specified name (RFC 9864).
    Ed25519,
}

/// The key pair an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    P256,
    P384,
    Rsa { bits: u32 },
    Ed25519,
}

impl Algorithm {
    /// Parses a JOSE `alg` name.
    pub(crate) fn from_jose(name: &str) -> Option<Self> {
        Some(match name {
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "RS256" => Self::Rs256,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "EdDSA" => Self::EdDsa,
            "Ed25519" => Self::Ed25519,
            _ => return None,
        })
    }

    /// Parses an RFC 9421 algorithm name (HTTP message signature key sets).
    pub(crate) fn from_http(name: &str) -> Option<Self> {
        Some(match name {
            "ed25519" => Self::EdDsa,
            "ecdsa-p256-sha256" => Self::Es256,
            "rsa-pss-sha512" => Self::Ps512,
            _ => return None,
        })
    }

    /// The JOSE `alg` value.
    pub(crate) fn jose_name(self) -> &'static str {
        match self {
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
            Self::Ed25519 => "Ed25519",
        }
    }

    /// The RFC 9421 name, for the algorithms RFC 9421 registers.
    pub(crate) fn http_name(self) -> Option<&'static str> {
        match self {
            Self::EdDsa | Self::Ed25519 => Some("ed25519"),
            Self::Es256 => Some("ecdsa-p256-sha256"),
            Self::Ps512 => Some("rsa-pss-sha512"),
            _ => None,
        }
    }

    /// Whether FAPI 2.0 permits it for JWTs (PS256, ES256, EdDSA/Ed25519).
    pub(crate) fn fapi_allowed(self) -> bool {
        matches!(
            self,
            Self::Ps256 | Self::Es256 | Self::EdDsa | Self::Ed25519
        )
    }

    /// The key pair this algorithm signs with; `rsa_bits` applies to the RSA ones.
    pub(crate) fn key_kind(self, rsa_bits: u32) -> KeyKind {
        match self {
            Self::Ps256 | Self::Ps384 | Self::Ps512 | Self::Rs256 => {
                KeyKind::Rsa { bits: rsa_bits }
            }
            Self::Es256 => KeyKind::P256,
            Self::Es384 => KeyKind::P384,
            Self::EdDsa | Self::Ed25519 => KeyKind::Ed25519,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.jose_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "PS256", "PS384", "PS512", "RS256", "ES256", "ES384", "EdDSA", "Ed25519",
        ] {
            assert_eq!(Algorithm::from_jose(name).unwrap().jose_name(), name);
        }
        for name in ["ed25519", "ecdsa-p256-sha256", "rsa-pss-sha512"] {
            assert_eq!(Algorithm::from_http(name).unwrap().http_name(), Some(name));
        }
        assert_eq!(Algorithm::from_jose("none"), None);
        assert_eq!(Algorithm::from_jose("HS256"), None);
    }

    #[test]
    fn fapi_set() {
        assert!(Algorithm::Ps256.fapi_allowed());
        assert!(!Algorithm::Rs256.fapi_allowed());
        assert!(!Algorithm::Es384.fapi_allowed());
    }
}
