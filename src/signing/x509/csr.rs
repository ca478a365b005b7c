//! PKCS#10 certificate signing requests (RFC 2986) for a [`SigningKey`], built by `x509-cert`'s
//! `RequestBuilder` and signed by the key itself through the [`Sign`](crate::signing::Sign) seam:
//! for an HSM key the signature is made inside the HSM (and self-checked, like every signature).
//!
//! The signature algorithm follows the key's JOSE algorithm: ECDSA with SHA-256/384, RSASSA-PSS
//! (SHA-n, MGF1-SHA-n, salt = hash length, as the key set signs) or PKCS#1 v1.5 for RS256,
//! Ed25519. The key's JWS signature (ECDSA `r||s`) becomes the X.509 form (DER `Ecdsa-Sig-Value`).

use std::cell::RefCell;
use std::str::FromStr;

use der::asn1::{BitString, Ia5String, UintRef};
use der::pem::LineEnding;
use der::{Any, Encode, EncodePem};
use signature::{Keypair, Signer};
use spki_types::{
    AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey,
    SignatureBitStringEncoding, SubjectPublicKeyInfoOwned,
};
use x509_cert::builder::{Builder, RequestBuilder};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

use super::oids;
use crate::signing::{Algorithm, SignError, SigningKey};

use x509_cert::spki as spki_types;

/// What a CSR asks for: the subject (RFC 4514, e.g. `CN=signet,O=Example`) and SANs.
#[derive(Debug, Clone, Default)]
pub struct CsrRequest {
    pub subject: String,
    pub dns: Vec<String>,
    pub uri: Vec<String>,
}

/// Why a CSR cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("`subject` is not an RFC 4514 distinguished name: {0}")]
    Subject(String),
    #[error("`subject` must not be empty")]
    EmptySubject,
    #[error("SAN `{0}` is not an IA5 (ASCII) string")]
    San(String),
    /// The key's signature failed (HSM down, busy, refused...).
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error("cannot encode the request: {0}")]
    Encode(String),
}

/// A checked request: the subject and the SAN extension, ready to be signed.
#[derive(Debug, Clone)]
pub struct CsrSpec {
    subject: Name,
    sans: Vec<GeneralName>,
}

impl CsrSpec {
    /// Parses `req`: subject and SANs are checked before any key is used.
    pub fn parse(req: &CsrRequest) -> Result<Self, CsrError> {
        if req.subject.trim().is_empty() {
            return Err(CsrError::EmptySubject);
        }
        let subject = Name::from_str(&req.subject).map_err(|e| CsrError::Subject(e.to_string()))?;
        let ia5 = |s: &String| Ia5String::new(s).map_err(|_| CsrError::San(s.clone()));
        let mut sans = Vec::new();
        for d in &req.dns {
            sans.push(GeneralName::DnsName(ia5(d)?));
        }
        for u in &req.uri {
            sans.push(GeneralName::UniformResourceIdentifier(ia5(u)?));
        }
        Ok(Self { subject, sans })
    }

    /// The PEM CSR, signed by `key` (blocking: an HSM key signs on the calling thread).
    pub fn sign(&self, key: &SigningKey) -> Result<String, CsrError> {
        let signer = KeySigner::new(key)?;
        let encode = |e: x509_cert::builder::Error| match signer.failure.borrow_mut().take() {
            Some(sign) => CsrError::Sign(sign),
            None => CsrError::Encode(e.to_string()),
        };
        let mut builder = RequestBuilder::new(self.subject.clone(), &signer).map_err(encode)?;
        if !self.sans.is_empty() {
            builder
                .add_extension(&SubjectAltName(self.sans.clone()))
                .map_err(encode)?;
        }
        let csr = builder.build::<X509Signature>().map_err(encode)?;
        csr.to_pem(LineEnding::LF)
            .map_err(|e| CsrError::Encode(e.to_string()))
    }
}

/// A [`SigningKey`] as `x509-cert`'s builder wants a signer: its SubjectPublicKeyInfo, its
/// X.509 signature algorithm, and `try_sign`. A signing failure is kept to be reported as such.
struct KeySigner<'k> {
    key: &'k SigningKey,
    spki: SubjectPublicKeyInfoOwned,
    algorithm: AlgorithmIdentifierOwned,
    failure: RefCell<Option<SignError>>,
}

impl<'k> KeySigner<'k> {
    fn new(key: &'k SigningKey) -> Result<Self, CsrError> {
        let encode = |e: der::Error| CsrError::Encode(e.to_string());
        Ok(Self {
            key,
            spki: super::spki::of(key.public_key()).map_err(encode)?,
            algorithm: signature_algorithm(key.alg()).map_err(encode)?,
            failure: RefCell::new(None),
        })
    }
}

/// The key's SubjectPublicKeyInfo, as the builder takes a public key.
#[derive(Debug, Clone)]
struct Spki(SubjectPublicKeyInfoOwned);

impl EncodePublicKey for Spki {
    fn to_public_key_der(&self) -> spki_types::Result<der::Document> {
        Ok(der::Document::encode_msg(&self.0)?)
    }
}

impl Keypair for KeySigner<'_> {
    type VerifyingKey = Spki;

    fn verifying_key(&self) -> Spki {
        Spki(self.spki.clone())
    }
}

impl DynSignatureAlgorithmIdentifier for KeySigner<'_> {
    fn signature_algorithm_identifier(&self) -> spki_types::Result<AlgorithmIdentifierOwned> {
        Ok(self.algorithm.clone())
    }
}

/// A signature in its X.509 encoding (the BIT STRING's bytes).
struct X509Signature(Vec<u8>);

impl SignatureBitStringEncoding for X509Signature {
    fn to_bitstring(&self) -> der::Result<BitString> {
        BitString::from_bytes(&self.0)
    }
}

impl Signer<X509Signature> for KeySigner<'_> {
    fn try_sign(&self, msg: &[u8]) -> Result<X509Signature, signature::Error> {
        let jws = self.key.sign(msg).map_err(|e| {
            *self.failure.borrow_mut() = Some(e);
            signature::Error::new()
        })?;
        let der = match self.key.alg() {
            Algorithm::Es256 | Algorithm::Es384 => {
                ecdsa_der(&jws).map_err(|_| signature::Error::new())?
            }
            _ => jws,
        };
        Ok(X509Signature(der))
    }
}

/// RFC 3279 2.2.3: `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`.
#[derive(der::Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// The JWS form of an ECDSA signature (`r || s`, RFC 7518 3.4) in its DER form.
pub(crate) fn ecdsa_der(rs: &[u8]) -> der::Result<Vec<u8>> {
    let (r, s) = rs.split_at(rs.len() / 2);
    EcdsaSigValue {
        r: UintRef::new(r)?,
        s: UintRef::new(s)?,
    }
    .to_der()
}

/// The JWS form (`r || s`, each `len` bytes) of a DER `Ecdsa-Sig-Value`; `None` if it is not
/// one, or a component is longer than `len`.
pub(crate) fn ecdsa_raw(der_sig: &[u8], len: usize) -> Option<Vec<u8>> {
    use der::Decode as _;
    let v = EcdsaSigValue::from_der(der_sig).ok()?;
    let (r, s) = (v.r.as_bytes(), v.s.as_bytes());
    if r.len() > len || s.len() > len {
        return None;
    }
    let mut out = vec![0; 2 * len];
    out[len - r.len()..len].copy_from_slice(r);
    out[2 * len - s.len()..].copy_from_slice(s);
    Some(out)
}

/// The X.509 signature algorithm of a key signing with `alg`.
fn signature_algorithm(alg: Algorithm) -> der::Result<AlgorithmIdentifierOwned> {
    let bare = |oid| AlgorithmIdentifierOwned {
        oid,
        parameters: None,
    };
    let pss = |params: pkcs1::RsaPssParams<'_>| -> der::Result<AlgorithmIdentifierOwned> {
        Ok(AlgorithmIdentifierOwned {
            oid: oids::RSASSA_PSS,
            parameters: Some(Any::encode_from(&params)?),
        })
    };
    match alg {
        Algorithm::Es256 => Ok(bare(oids::ECDSA_WITH_SHA256)),
        Algorithm::Es384 => Ok(bare(oids::ECDSA_WITH_SHA384)),
        Algorithm::EdDsa | Algorithm::Ed25519 => Ok(bare(oids::ED25519)),
        Algorithm::Rs256 => Ok(AlgorithmIdentifierOwned {
            oid: oids::SHA256_WITH_RSA,
            parameters: Some(Any::null()),
        }),
        Algorithm::Ps256 => pss(pkcs1::RsaPssParams::new::<sha2::Sha256>(32)),
        Algorithm::Ps384 => pss(pkcs1::RsaPssParams::new::<sha2::Sha384>(48)),
        Algorithm::Ps512 => pss(pkcs1::RsaPssParams::new::<sha2::Sha512>(64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::software::SoftwareSigner;
    use x509_parser::prelude::*;

    #[test]
    fn a_csr_per_algorithm_verifies_and_carries_the_key() {
        for alg in [
            Algorithm::Es256,
            Algorithm::Es384,
            Algorithm::Ps256,
            Algorithm::Rs256,
            Algorithm::EdDsa,
        ] {
            let key = SoftwareSigner::generate(alg).unwrap();
            let req = CsrRequest {
                subject: "CN=signet test,O=Example".into(),
                dns: vec!["signer.example.test".into()],
                uri: vec!["https://as.example.test".into()],
            };
            let pem = CsrSpec::parse(&req).unwrap().sign(&key).unwrap();
            let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
            let (_, csr) = X509CertificationRequest::from_der(&pem.contents).unwrap();
            csr.verify_signature()
                .unwrap_or_else(|e| panic!("{alg}: {e}"));
            let public =
                super::super::spki::public_key(&csr.certification_request_info.subject_pki)
                    .unwrap();
            assert_eq!(public.thumbprint(), key.kid(), "{alg}");
        }
    }

    #[test]
    fn bad_subjects_and_sans_are_refused() {
        let req = |subject: &str, dns: &str| CsrRequest {
            subject: subject.into(),
            dns: vec![dns.into()],
            uri: vec![],
        };
        assert!(matches!(
            CsrSpec::parse(&req(" ", "a")),
            Err(CsrError::EmptySubject)
        ));
        assert!(matches!(
            CsrSpec::parse(&req("CN", "a")),
            Err(CsrError::Subject(_))
        ));
        assert!(matches!(
            CsrSpec::parse(&req("CN=x", "ä.example")),
            Err(CsrError::San(_))
        ));
    }
}
