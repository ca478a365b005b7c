//! A [`PublicKey`] as an X.509 SubjectPublicKeyInfo and back: `x509-cert`/`pkcs1` types build the
//! DER, `x509-parser` reads a certificate's.

use der::Encode;
use der::asn1::{BitString, UintRef};
use der::{Any, asn1::ObjectIdentifier};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_parser::public_key::PublicKey as ParsedKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::oids;
use crate::signing::PublicKey;
use crate::signing::jwk::Curve;

/// The SubjectPublicKeyInfo of `key`: `rsaEncryption` (whatever the RSA signature scheme),
/// `id-ecPublicKey` with its named curve and an uncompressed point, or `id-Ed25519`.
pub(crate) fn of(key: &PublicKey) -> der::Result<SubjectPublicKeyInfoOwned> {
    let (algorithm, bits) = match key {
        PublicKey::Rsa { n, e } => {
            let rsa = pkcs1::RsaPublicKey {
                modulus: UintRef::new(n)?,
                public_exponent: UintRef::new(e)?,
            };
            let algorithm = AlgorithmIdentifierOwned {
                oid: oids::RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            };
            (algorithm, rsa.to_der()?)
        }
        PublicKey::Ec { curve, x, y } => {
            let (oid, len) = match curve {
                Curve::P256 => (oids::SECP256R1, 32),
                Curve::P384 => (oids::SECP384R1, 48),
            };
            let mut point = vec![0x04];
            point.extend(left_pad(x, len));
            point.extend(left_pad(y, len));
            let algorithm = AlgorithmIdentifierOwned {
                oid: oids::EC_PUBLIC_KEY,
                parameters: Some(Any::encode_from(&oid)?),
            };
            (algorithm, point)
        }
        PublicKey::Ed25519 { x } => {
            let algorithm = AlgorithmIdentifierOwned {
                oid: oids::ED25519,
                parameters: None,
            };
            (algorithm, x.clone())
        }
    };
    Ok(SubjectPublicKeyInfoOwned {
        algorithm,
        subject_public_key: BitString::from_bytes(&bits)?,
    })
}

/// `key` as a PEM `PUBLIC KEY` block (its SubjectPublicKeyInfo, RFC 7468), as Vault Transit's
/// key listing shows it.
pub(crate) fn pem(key: &PublicKey) -> der::Result<String> {
    use der::EncodePem as _;
    of(key)?.to_pem(der::pem::LineEnding::LF)
}

fn left_pad(v: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0; len.saturating_sub(v.len())];
    out.extend_from_slice(v);
    out
}

/// The public key of a parsed SubjectPublicKeyInfo, if it is one Signet signs with.
pub(crate) fn public_key(spki: &SubjectPublicKeyInfo<'_>) -> Option<PublicKey> {
    let oid = |o: &ObjectIdentifier| o.as_bytes().to_vec();
    let alg = spki.algorithm.algorithm.as_bytes();
    if alg == oid(&oids::ED25519) {
        return Some(PublicKey::Ed25519 {
            x: spki.subject_public_key.data.to_vec(),
        });
    }
    match spki.parsed().ok()? {
        ParsedKey::RSA(rsa) if alg == oid(&oids::RSA_ENCRYPTION) => Some(PublicKey::Rsa {
            n: rsa.modulus.to_vec(),
            e: rsa.exponent.to_vec(),
        }),
        ParsedKey::EC(point) if alg == oid(&oids::EC_PUBLIC_KEY) => {
            let params = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
            let curve = if params.as_bytes() == oid(&oids::SECP256R1) {
                Curve::P256
            } else if params.as_bytes() == oid(&oids::SECP384R1) {
                Curve::P384
            } else {
                return None;
            };
            let data = point.data();
            let len = (data.len().checked_sub(1)?) / 2;
            if data.first() != Some(&0x04) || data.len() != 1 + 2 * len {
                return None;
            }
            Some(PublicKey::Ec {
                curve,
                x: data[1..1 + len].to_vec(),
                y: data[1 + len..].to_vec(),
            })
        }
        _ => None,
    }
}
