//! X.509 for Signet's keys: PKCS#10 CSRs signed by the key itself (`csr`), the checks a chain
//! must pass before it is attached to a key (`chain`), and the key as a SubjectPublicKeyInfo
//! (`spki`). Built on `x509-cert`, `pkcs1` and `der` (encoding) and `x509-parser` (parsing and
//! signature verification); no ASN.1 is written by hand.

mod chain;
mod csr;
mod spki;

pub use chain::{ChainError, CheckedChain, check as check_chain, x5t_s256};
pub use csr::{CsrError, CsrRequest, CsrSpec};
pub(crate) use csr::{ecdsa_der, ecdsa_raw};
pub(crate) use spki::pem as spki_pem;

/// The object identifiers the encoders need.
mod oids {
    use der::asn1::ObjectIdentifier as Oid;

    pub(super) const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    pub(super) const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
    pub(super) const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
    pub(super) const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    pub(super) const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    pub(super) const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
    pub(super) const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    pub(super) const ECDSA_WITH_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
    pub(super) const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
}
