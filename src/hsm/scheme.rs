//! Key types and signature schemes, and the PKCS#11 mechanisms that realise them. Mechanisms are
//! chosen from what the token reports: where a token lacks a combined hash-and-sign mechanism
//! (SoftHSM has no CKM_ECDSA_SHA256; p11-kit does not forward CKM_SHA256_RSA_PKCS_PSS), the
//! digest is computed here and only the raw operation runs in the token.

use std::fmt;

use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::HsmError;

/// A key pair to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    EcP256,
    EcP384,
    Rsa { bits: u32 },
    Ed25519,
}

/// A signature scheme, hashing included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignScheme {
    /// ECDSA over SHA-256, output r||s.
    EcdsaSha256,
    /// ECDSA over SHA-384, output r||s.
    EcdsaSha384,
    /// RSASSA-PSS with MGF1 over the same hash, salt length = hash length.
    RsaPssSha256,
    RsaPssSha384,
    RsaPssSha512,
    /// RSASSA-PKCS1-v1_5 over SHA-256.
    RsaPkcs1Sha256,
    /// Pure Ed25519.
    Ed25519,
}

impl fmt::Display for SignScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Debug, Clone, Copy)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha384 => Sha384::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn pss_params(self) -> PkcsPssParams {
        let (hash_alg, mgf, len) = match self {
            Self::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32u64),
            Self::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48),
            Self::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64),
        };
        PkcsPssParams {
            hash_alg,
            mgf,
            s_len: len.into(),
        }
    }

    /// The combined hash-and-PSS mechanism type.
    fn pss_type(self) -> MechanismType {
        match self {
            Self::Sha256 => MechanismType::SHA256_RSA_PKCS_PSS,
            Self::Sha384 => MechanismType::SHA384_RSA_PKCS_PSS,
            Self::Sha512 => MechanismType::SHA512_RSA_PKCS_PSS,
        }
    }
}

/// DER DigestInfo prefix of SHA-256 (RFC 8017 9.2 note 1), for tokens without CKM_SHA256_RSA_PKCS.
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// What goes to C_SignInit / C_Sign.
pub(super) struct Prepared {
    kind: PreparedKind,
    pub(crate) input: Vec<u8>,
}

enum PreparedKind {
    Ecdsa,
    Eddsa,
    Pss(Hash, bool),
    Pkcs1(bool),
}

impl Prepared {
    pub(crate) fn mechanism(&self) -> Mechanism<'static> {
        match self.kind {
            PreparedKind::Ecdsa => Mechanism::Ecdsa,
            PreparedKind::Eddsa => Mechanism::Eddsa(cryptoki::mechanism::eddsa::EddsaParams::new(
                cryptoki::mechanism::eddsa::EddsaSignatureScheme::Pure,
            )),
            PreparedKind::Pss(hash, true) => match hash {
                Hash::Sha256 => Mechanism::Sha256RsaPkcsPss(hash.pss_params()),
                Hash::Sha384 => Mechanism::Sha384RsaPkcsPss(hash.pss_params()),
                Hash::Sha512 => Mechanism::Sha512RsaPkcsPss(hash.pss_params()),
            },
            PreparedKind::Pss(hash, false) => Mechanism::RsaPkcsPss(hash.pss_params()),
            PreparedKind::Pkcs1(true) => Mechanism::Sha256RsaPkcs,
            PreparedKind::Pkcs1(false) => Mechanism::RsaPkcs,
        }
    }
}

/// Picks the mechanism for `scheme` from `available` and prepares the input for it.
pub(super) fn prepare(
    scheme: SignScheme,
    data: &[u8],
    available: &[MechanismType],
) -> Result<Prepared, HsmError> {
    let has = |m: MechanismType| available.contains(&m);
    let need = |m: MechanismType| {
        if has(m) {
            Ok(())
        } else {
            Err(HsmError::Unsupported(m.to_string()))
        }
    };
    let pss = |hash: Hash| -> Result<Prepared, HsmError> {
        if has(hash.pss_type()) {
            Ok(Prepared {
                kind: PreparedKind::Pss(hash, true),
                input: data.to_vec(),
            })
        } else {
            need(MechanismType::RSA_PKCS_PSS)?;
            Ok(Prepared {
                kind: PreparedKind::Pss(hash, false),
                input: hash.digest(data),
            })
        }
    };
    match scheme {
        SignScheme::EcdsaSha256 | SignScheme::EcdsaSha384 => {
            need(MechanismType::ECDSA)?;
            let hash = if scheme == SignScheme::EcdsaSha256 {
                Hash::Sha256
            } else {
                Hash::Sha384
            };
            Ok(Prepared {
                kind: PreparedKind::Ecdsa,
                input: hash.digest(data),
            })
        }
        SignScheme::Ed25519 => {
            need(MechanismType::EDDSA)?;
            Ok(Prepared {
                kind: PreparedKind::Eddsa,
                input: data.to_vec(),
            })
        }
        SignScheme::RsaPssSha256 => pss(Hash::Sha256),
        SignScheme::RsaPssSha384 => pss(Hash::Sha384),
        SignScheme::RsaPssSha512 => pss(Hash::Sha512),
        SignScheme::RsaPkcs1Sha256 => {
            if has(MechanismType::SHA256_RSA_PKCS) {
                Ok(Prepared {
                    kind: PreparedKind::Pkcs1(true),
                    input: data.to_vec(),
                })
            } else {
                need(MechanismType::RSA_PKCS)?;
                let mut input = SHA256_DIGEST_INFO.to_vec();
                input.extend_from_slice(&Hash::Sha256.digest(data));
                Ok(Prepared {
                    kind: PreparedKind::Pkcs1(false),
                    input,
                })
            }
        }
    }
}

/// The mechanisms `spec` and `scheme` need that `available` lacks.
pub(super) fn required(
    spec: KeySpec,
    scheme: SignScheme,
    available: &[MechanismType],
) -> Vec<MechanismType> {
    let keygen = match spec {
        KeySpec::EcP256 | KeySpec::EcP384 => MechanismType::ECC_KEY_PAIR_GEN,
        KeySpec::Rsa { .. } => MechanismType::RSA_PKCS_KEY_PAIR_GEN,
        KeySpec::Ed25519 => MechanismType::ECC_EDWARDS_KEY_PAIR_GEN,
    };
    let mut missing = Vec::new();
    if !available.contains(&keygen) {
        missing.push(keygen);
    }
    if let Err(HsmError::Unsupported(_)) = prepare(scheme, b"", available) {
        missing.push(match scheme {
            SignScheme::EcdsaSha256 | SignScheme::EcdsaSha384 => MechanismType::ECDSA,
            SignScheme::Ed25519 => MechanismType::EDDSA,
            SignScheme::RsaPkcs1Sha256 => MechanismType::RSA_PKCS,
            _ => MechanismType::RSA_PKCS_PSS,
        });
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hash_when_the_token_lacks_hash_and_sign() {
        let only_raw = [MechanismType::RSA_PKCS_PSS, MechanismType::ECDSA];
        let p = prepare(SignScheme::RsaPssSha256, b"abc", &only_raw).unwrap();
        assert_eq!(p.input, Sha256::digest(b"abc").to_vec());
        let p = prepare(SignScheme::EcdsaSha256, b"abc", &only_raw).unwrap();
        assert_eq!(p.input.len(), 32);
        let both = [
            MechanismType::RSA_PKCS_PSS,
            MechanismType::SHA256_RSA_PKCS_PSS,
        ];
        let p = prepare(SignScheme::RsaPssSha256, b"abc", &both).unwrap();
        assert_eq!(p.input, b"abc");
    }

    #[test]
    fn missing_mechanisms_are_named() {
        let m = required(
            KeySpec::Ed25519,
            SignScheme::Ed25519,
            &[MechanismType::ECDSA],
        );
        assert_eq!(
            m,
            vec![
                MechanismType::ECC_EDWARDS_KEY_PAIR_GEN,
                MechanismType::EDDSA
            ]
        );
        let p = prepare(SignScheme::Ed25519, b"", &[]);
        assert!(matches!(p, Err(HsmError::Unsupported(_))));
    }
}
