//! The signer suite: the software signer (`signing::software`) and the PKCS#11 signer
//! (`service::hsm_signer::HsmSigner` over keys generated in a SoftHSM2 token of its own) pass the
//! same checks, for every algorithm each supports. Signatures are checked with independent
//! libraries (jsonwebtoken's RustCrypto backend, ed25519-dalek, p256), never with Signet's own
//! verifier.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use secrecy::SecretString;
use serde_json::Value;
use signet::hsm::{Backend, BackendConfig};
use signet::service::hsm_signer::{self, HsmSigner};
use signet::signing::software::SoftwareSigner;
use signet::signing::{Algorithm, Sign, SignError, SigningKey};

use common::{PIN, SOFTHSM, Token};

/// Every algorithm Signet signs with: the JOSE ones and those RFC 9421 names
/// (`rsa-pss-sha512` = PS512, `ecdsa-p256-sha256` = ES256, `ed25519` = EdDSA).
const ALL: [Algorithm; 8] = [
    Algorithm::Ps256,
    Algorithm::Ps384,
    Algorithm::Ps512,
    Algorithm::Rs256,
    Algorithm::Es256,
    Algorithm::Es384,
    Algorithm::EdDsa,
    Algorithm::Ed25519,
];

/// A signer implementation under test: it makes a key for an algorithm, as the service would
/// use it (kid, public key, signer behind [`SigningKey`]).
trait Signers {
    fn name(&self) -> &'static str;
    fn algorithms(&self) -> Vec<Algorithm>;
    fn key(&self, alg: Algorithm) -> SigningKey;
}

/// Runs every check for every algorithm `signers` supports.
fn suite(signers: &impl Signers) {
    let algorithms = signers.algorithms();
    assert!(
        !algorithms.is_empty(),
        "{} supports nothing",
        signers.name()
    );
    for alg in algorithms {
        let key = signers.key(alg);
        let at = format!("{} {alg}", signers.name());
        verifies_independently(&key, &at);
        kid_is_the_jwk_thumbprint(&key, &at);
        other_bytes_do_not_verify(&key, &at);
        signature_has_the_jws_form(&key, &at);
        self_check_catches_a_faulty_signer(&key, &at);
    }
}

/// A JWS signing input.
const MSG: &[u8] = b"eyJhbGciOiJFUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJzaWduZXQifQ";

/// The key's public JWK as jsonwebtoken reads it.
fn jwk(key: &SigningKey) -> Jwk {
    let members = Value::Object(key.public_key().jwk_members());
    serde_json::from_value(members).expect("jsonwebtoken reads the public JWK")
}

fn jose_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::Ps256 => jsonwebtoken::Algorithm::PS256,
        Algorithm::Ps384 => jsonwebtoken::Algorithm::PS384,
        Algorithm::Ps512 => jsonwebtoken::Algorithm::PS512,
        Algorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::Es256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::Es384 => jsonwebtoken::Algorithm::ES384,
        Algorithm::EdDsa | Algorithm::Ed25519 => jsonwebtoken::Algorithm::EdDSA,
    }
}

/// Whether jsonwebtoken accepts `sig` over `msg` for the key's public JWK. Its RustCrypto backend
/// wants ECDSA signatures as raw r||s and verifies RSASSA-PSS with `rsa::Pss::new::<D>()`, which
/// accepts only a salt as long as the hash (RFC 7518 3.5).
fn jsonwebtoken_verifies(key: &SigningKey, msg: &[u8], sig: &[u8]) -> bool {
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk(key)).expect("decoding key");
    jsonwebtoken::crypto::verify(&B64URL.encode(sig), msg, &decoding, jose_alg(key.alg()))
        .expect("jsonwebtoken verifies")
}

fn sign(key: &SigningKey, msg: &[u8], at: &str) -> Vec<u8> {
    key.sign(msg).unwrap_or_else(|e| panic!("{at}: sign: {e}"))
}

fn verifies_independently(key: &SigningKey, at: &str) {
    let sig = sign(key, MSG, at);
    assert!(jsonwebtoken_verifies(key, MSG, &sig), "{at}: jsonwebtoken");
    match key.alg() {
        Algorithm::EdDsa | Algorithm::Ed25519 => {
            let x = jwk_bytes(key, "x");
            let public = ed25519_dalek::VerifyingKey::from_bytes(&x.try_into().expect("32 bytes"))
                .expect("Ed25519 public key");
            let sig = ed25519_dalek::Signature::from_slice(&sig).expect("64 bytes");
            public
                .verify_strict(MSG, &sig)
                .unwrap_or_else(|e| panic!("{at}: ed25519-dalek: {e}"));
        }
        Algorithm::Es256 => {
            use p256::ecdsa::signature::Verifier as _;
            let point = [vec![4], jwk_bytes(key, "x"), jwk_bytes(key, "y")].concat();
            let public = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).expect("P-256 key");
            let sig = p256::ecdsa::Signature::from_slice(&sig).expect("raw r||s");
            public
                .verify(MSG, &sig)
                .unwrap_or_else(|e| panic!("{at}: p256: {e}"));
        }
        _ => {}
    }
}

fn jwk_bytes(key: &SigningKey, member: &str) -> Vec<u8> {
    let members = key.public_key().jwk_members();
    let text = members.get(member).and_then(Value::as_str).expect(member);
    B64URL.decode(text).expect("base64url")
}

fn kid_is_the_jwk_thumbprint(key: &SigningKey, at: &str) {
    assert_eq!(
        key.kid(),
        jwk(key).thumbprint(ThumbprintHash::SHA256),
        "{at}: the kid is the RFC 7638 thumbprint"
    );
}

fn other_bytes_do_not_verify(key: &SigningKey, at: &str) {
    let sig = sign(key, MSG, at);
    let mut other = MSG.to_vec();
    other[0] ^= 1;
    assert!(
        !jsonwebtoken_verifies(key, &other, &sig),
        "{at}: other bytes"
    );
    let mut forged = sig.clone();
    forged[sig.len() / 2] ^= 1;
    assert!(
        !jsonwebtoken_verifies(key, MSG, &forged),
        "{at}: altered signature"
    );
}

/// ECDSA: raw r||s of twice the coordinate length (not DER); RSA: the modulus length; PSS: a
/// random salt (two signatures of the same bytes differ), whose length jsonwebtoken checked.
fn signature_has_the_jws_form(key: &SigningKey, at: &str) {
    let (first, second) = (sign(key, MSG, at), sign(key, MSG, at));
    let modulus = || jwk_bytes(key, "n").len();
    let expected = match key.alg() {
        Algorithm::Es256 => 64,
        Algorithm::Es384 => 96,
        Algorithm::EdDsa | Algorithm::Ed25519 => 64,
        Algorithm::Ps256 | Algorithm::Ps384 | Algorithm::Ps512 | Algorithm::Rs256 => modulus(),
    };
    assert_eq!(first.len(), expected, "{at}: signature length");
    match key.alg() {
        Algorithm::Ps256 | Algorithm::Ps384 | Algorithm::Ps512 => {
            assert_ne!(first, second, "{at}: PSS without a random salt")
        }
        Algorithm::Rs256 | Algorithm::EdDsa | Algorithm::Ed25519 => {
            assert_eq!(first, second, "{at}: deterministic scheme")
        }
        Algorithm::Es256 | Algorithm::Es384 => {}
    }
}

/// A signer that goes wrong in one of the ways a fault or a bug would.
#[derive(Debug)]
enum Faulty {
    /// Flips one bit of a good signature.
    BitFlip(SigningKey),
    /// Signs other bytes than it was given.
    OtherBytes(SigningKey),
    /// Returns nothing.
    Empty,
}

impl Sign for Faulty {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        match self {
            Faulty::BitFlip(key) => {
                let mut sig = key.sign(msg)?;
                sig[0] ^= 0x80;
                Ok(sig)
            }
            Faulty::OtherBytes(key) => key.sign(&[msg, b"."].concat()),
            Faulty::Empty => Ok(Vec::new()),
        }
    }
}

fn self_check_catches_a_faulty_signer(key: &SigningKey, at: &str) {
    for (what, faulty) in [
        ("bit-flipping", Faulty::BitFlip(key.clone())),
        ("other-bytes", Faulty::OtherBytes(key.clone())),
        ("empty", Faulty::Empty),
    ] {
        let wrapped = SigningKey::new(
            key.kid(),
            key.alg(),
            key.public_key().clone(),
            Arc::new(faulty),
        )
        .expect("signing key");
        match wrapped.sign(MSG) {
            Err(SignError::SelfCheckFailed(kid)) => assert_eq!(kid, key.kid(), "{at}"),
            other => panic!("{at}: a {what} signer gave {other:?}"),
        }
    }
}

/// Keys in process memory (josekit over OpenSSL).
struct Software;

impl Signers for Software {
    fn name(&self) -> &'static str {
        "software"
    }

    fn algorithms(&self) -> Vec<Algorithm> {
        ALL.to_vec()
    }

    fn key(&self, alg: Algorithm) -> SigningKey {
        SoftwareSigner::generate(alg).unwrap_or_else(|e| panic!("software {alg}: {e}"))
    }
}

/// Keys generated in a SoftHSM2 token, as `service::keygen` makes them: generated under a pending
/// `CKA_ID`, then given the kid (the thumbprint of the public key read back) as `CKA_ID`.
struct Pkcs11 {
    backend: Arc<Backend>,
    _token: Token,
}

impl Signers for Pkcs11 {
    fn name(&self) -> &'static str {
        "pkcs11"
    }

    fn algorithms(&self) -> Vec<Algorithm> {
        ALL.into_iter()
            .filter(|alg| {
                let spec = hsm_signer::key_spec(*alg, 2048);
                let scheme = hsm_signer::scheme(*alg);
                self.backend.check_support(spec, scheme).is_ok()
            })
            .collect()
    }

    fn key(&self, alg: Algorithm) -> SigningKey {
        let at = format!("pkcs11 {alg}");
        let pending = format!("pending-{alg}").into_bytes();
        let spec = hsm_signer::key_spec(alg, 2048);
        let generated = self
            .backend
            .generate(spec, &pending, "signet/suite/pending")
            .unwrap_or_else(|e| panic!("{at}: generate: {e}"));
        let kid = hsm_signer::public_key(generated).thumbprint();
        self.backend
            .relabel(&pending, kid.as_bytes(), &format!("signet/suite/{kid}"))
            .unwrap_or_else(|e| panic!("{at}: relabel: {e}"));
        let public = self
            .backend
            .public_key(kid.as_bytes())
            .unwrap_or_else(|e| panic!("{at}: read the public key back: {e}"));
        let signer = HsmSigner::new(self.backend.clone(), kid.as_bytes().to_vec(), alg);
        SigningKey::new(&kid, alg, hsm_signer::public_key(public), Arc::new(signer))
            .unwrap_or_else(|e| panic!("{at}: {e}"))
    }
}

/// The two tests take turns: the PKCS#11 one sets `SOFTHSM2_CONF`, which must not happen while
/// another thread of this process may read the environment (OpenSSL does, in the software one).
static TURN: Mutex<()> = Mutex::new(());

#[test]
fn software_signer_passes_the_suite() {
    let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    suite(&Software);
}

#[test]
fn pkcs11_signer_passes_the_suite() {
    let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let token = Token::new("signer-suite");
    // SAFETY: no other test of this process runs meanwhile (see TURN), and SoftHSM reads the
    // variable when it is loaded, below; this is the only test here that loads it.
    unsafe { std::env::set_var("SOFTHSM2_CONF", token.conf()) };
    let backend = Backend::open(
        BackendConfig {
            name: "suite".into(),
            module: SOFTHSM.into(),
            token_label: Some(token.label.clone()),
            token_serial: None,
            sessions: 2,
            checkout_timeout: Duration::from_secs(5),
        },
        SecretString::from(PIN),
    )
    .expect("open the SoftHSM token");
    let pkcs11 = Pkcs11 {
        backend: Arc::new(backend),
        _token: token,
    };
    assert_eq!(
        pkcs11.algorithms(),
        ALL,
        "SoftHSM2 supports every algorithm"
    );
    suite(&pkcs11);
}
