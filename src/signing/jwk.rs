//! Public keys as JWKs (RFC 7517/7518/8037) and their RFC 7638 thumbprints, which are Signet's kids.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// An elliptic curve of an `EC` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
        }
    }
}

/// The public half of a signing key, as raw big-endian / octet values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    Ec {
        curve: Curve,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
}

/// A JWK that is not a public key Signet understands.
#[derive(Debug, thiserror::Error)]
#[error("unsupported or malformed public JWK: {0}")]
pub struct JwkError(pub &'static str);

impl PublicKey {
    /// The key's public members in RFC 7638 order (lexicographic), without `kid`, `alg`, `use`.
    pub fn jwk_members(&self) -> Map<String, Value> {
        let v = match self {
            Self::Ec { curve, x, y } => {
                json!({"crv": curve.name(), "kty": "EC", "x": B64.encode(x), "y": B64.encode(y)})
            }
            Self::Rsa { n, e } => {
                json!({"e": B64.encode(strip_zeros(e)), "kty": "RSA", "n": B64.encode(strip_zeros(n))})
            }
            Self::Ed25519 { x } => json!({"crv": "Ed25519", "kty": "OKP", "x": B64.encode(x)}),
        };
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): the kid.
    pub fn thumbprint(&self) -> String {
        // serde_json's Map is ordered by key and prints without whitespace: exactly RFC 7638 3.3.
        let canonical = Value::Object(self.jwk_members()).to_string();
        B64.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The JWK a verifier needs: public members plus `kid`, `alg` and `use: "sig"`.
    pub fn to_jwk(&self, kid: &str, alg: &str) -> Map<String, Value> {
        let mut m = self.jwk_members();
        m.insert("kid".into(), Value::String(kid.into()));
        m.insert("alg".into(), Value::String(alg.into()));
        m.insert("use".into(), Value::String("sig".into()));
        m
    }

    /// Reads the public members of a JWK (private members, if any, are ignored).
    pub(crate) fn from_jwk(jwk: &Map<String, Value>) -> Result<Self, JwkError> {
        let field = |name: &'static str| -> Result<Vec<u8>, JwkError> {
            jwk.get(name)
                .and_then(Value::as_str)
                .and_then(|s| B64.decode(s).ok())
                .ok_or(JwkError(name))
        };
        match jwk.get("kty").and_then(Value::as_str) {
            Some("EC") => {
                let curve = match jwk.get("crv").and_then(Value::as_str) {
                    Some("P-256") => Curve::P256,
                    Some("P-384") => Curve::P384,
                    _ => return Err(JwkError("crv")),
                };
                Ok(Self::Ec {
                    curve,
                    x: field("x")?,
                    y: field("y")?,
                })
            }
            Some("RSA") => Ok(Self::Rsa {
                n: field("n")?,
                e: field("e")?,
            }),
            Some("OKP") if jwk.get("crv").and_then(Value::as_str) == Some("Ed25519") => {
                Ok(Self::Ed25519 { x: field("x")? })
            }
            _ => Err(JwkError("kty")),
        }
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|x| *x != 0)
        .unwrap_or(b.len().saturating_sub(1));
    &b[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8037_a3_thumbprint() {
        let jwk = json!({"kty": "OKP", "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let key = PublicKey::from_jwk(jwk.as_object().unwrap()).unwrap();
        assert_eq!(
            key.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn rfc7638_rsa_thumbprint() {
        // RFC 7638 section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let jwk = json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
        let key = PublicKey::from_jwk(jwk.as_object().unwrap()).unwrap();
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn served_jwk_has_only_public_members() {
        let key = PublicKey::Ed25519 { x: vec![1; 32] };
        let jwk = key.to_jwk("k", "EdDSA");
        let mut names: Vec<_> = jwk.keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["alg", "crv", "kid", "kty", "use", "x"]);
    }

    #[test]
    fn rsa_members_are_minimal() {
        let key = PublicKey::Rsa {
            n: vec![0, 0xc1, 2],
            e: vec![0, 1, 0, 1],
        };
        let m = key.jwk_members();
        assert_eq!(m["e"], "AQAB");
        assert_eq!(m["n"], B64.encode([0xc1, 2]));
    }
}
