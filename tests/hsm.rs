//! The PKCS#11 layer against a real SoftHSM2 token: generation templates, attributes, signing with
//! every scheme, relabelling, destruction. One test: SoftHSM is initialised once per process.

mod common;

use common::*;
use secrecy::SecretString;
use signet::hsm::{Backend, BackendConfig, KeySpec, SignScheme};
use signet::service::hsm_signer;
use signet::signing::{Algorithm, SigningKey};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn keys_are_generated_sensitive_and_sign_with_every_scheme() {
    let token = Token::new("hsm-layer");
    // SAFETY of the test: this process loads SoftHSM only here, after the variable is set.
    unsafe { std::env::set_var("SOFTHSM2_CONF", token.conf()) };
    let backend = Arc::new(
        Backend::open(
            BackendConfig {
                name: "t".into(),
                module: SOFTHSM.into(),
                token_label: Some("hsm-layer".into()),
                token_serial: None,
                sessions: 2,
                checkout_timeout: Duration::from_secs(5),
            },
            SecretString::from(PIN),
        )
        .expect("open SoftHSM token"),
    );
    let cases = [
        (Algorithm::Es256, KeySpec::EcP256),
        (Algorithm::Es384, KeySpec::EcP384),
        (Algorithm::Ps256, KeySpec::Rsa { bits: 2048 }),
        (Algorithm::Ps384, KeySpec::Rsa { bits: 2048 }),
        (Algorithm::Ps512, KeySpec::Rsa { bits: 2048 }),
        (Algorithm::Rs256, KeySpec::Rsa { bits: 2048 }),
        (Algorithm::EdDsa, KeySpec::Ed25519),
    ];
    for (i, (alg, spec)) in cases.into_iter().enumerate() {
        assert_eq!(hsm_signer::key_spec(alg, 2048), spec);
        backend
            .check_support(spec, hsm_signer::scheme(alg))
            .expect("mechanisms");
        let pending = format!("pending-{i}").into_bytes();
        let public = backend
            .generate(spec, &pending, "signet/test/pending")
            .unwrap();
        let public = hsm_signer::public_key(public);
        let kid = public.thumbprint();
        backend
            .relabel(&pending, kid.as_bytes(), &format!("signet/test/{kid}"))
            .unwrap();
        assert_eq!(
            backend.id_by_label(&format!("signet/test/{kid}")).unwrap(),
            kid.as_bytes()
        );
        assert!(
            backend.public_key(&pending).is_err(),
            "the pending id is gone"
        );
        assert_eq!(
            hsm_signer::public_key(backend.public_key(kid.as_bytes()).unwrap()),
            public
        );

        let a = backend.private_attributes(kid.as_bytes()).unwrap();
        assert!(
            a.token && a.private && a.sensitive && a.always_sensitive,
            "{alg}: {a:?}"
        );
        assert!(!a.extractable && a.never_extractable, "{alg}: {a:?}");
        assert!(
            a.sign && !a.decrypt && !a.unwrap && !a.derive,
            "{alg}: {a:?}"
        );

        // SigningKey self-verifies with josekit; the signature must also have the JWS length.
        let signer = Arc::new(hsm_signer::HsmSigner::new(
            backend.clone(),
            kid.as_bytes().to_vec(),
            alg,
        ));
        let key = SigningKey::new(&kid, alg, public, signer).unwrap();
        let sig = key
            .sign(b"signing input")
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        let expected = match spec {
            KeySpec::EcP256 => 64,
            KeySpec::EcP384 => 96,
            KeySpec::Ed25519 => 64,
            KeySpec::Rsa { bits } => bits as usize / 8,
        };
        assert_eq!(sig.len(), expected, "{alg}");
    }
    // The pool survives more concurrent callers than sessions.
    let kid = backend.list_ids("signet/test/").unwrap()[0].0.clone();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (b, id) = (backend.clone(), kid.clone());
            std::thread::spawn(move || {
                for _ in 0..20 {
                    b.sign(&id, scheme_of(&b, &id), b"x").unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Sessions closed behind Signet's back (C_CloseAllSessions from elsewhere in the process,
    // which also logs the application out): the next call replaces the session, logs in again
    // and succeeds.
    let slot = backend.description().slot;
    let raw = unsafe { cryptoki_sys::Pkcs11::new(SOFTHSM) }.expect("load SoftHSM again");
    assert_eq!(
        unsafe { raw.C_CloseAllSessions(slot as _) },
        cryptoki_sys::CKR_OK
    );
    for _ in 0..4 {
        backend
            .sign(&kid, scheme_of(&backend, &kid), b"after close")
            .expect("recovered");
    }
    // Logged out behind Signet's back (login is per application): it logs in again.
    {
        let other = cryptoki::context::Pkcs11::new(SOFTHSM).unwrap();
        let s = other
            .open_ro_session(cryptoki::slot::Slot::try_from(slot).unwrap())
            .unwrap();
        s.logout().unwrap();
        std::mem::forget(s);
    }
    backend
        .sign(&kid, scheme_of(&backend, &kid), b"after logout")
        .expect("logged in again");

    // Destroying removes the private object; signing then fails cleanly.
    backend.destroy(&kid).unwrap();
    assert!(backend.private_attributes(&kid).is_err());
    assert!(backend.sign(&kid, SignScheme::EcdsaSha256, b"x").is_err());
    assert_eq!(
        backend.list_ids("signet/test/").unwrap().len(),
        cases.len() - 1
    );
}

fn scheme_of(backend: &Backend, id: &[u8]) -> SignScheme {
    match backend.public_key(id).unwrap() {
        signet::hsm::PublicKey::EcP256 { .. } => SignScheme::EcdsaSha256,
        signet::hsm::PublicKey::EcP384 { .. } => SignScheme::EcdsaSha384,
        signet::hsm::PublicKey::Ed25519 { .. } => SignScheme::Ed25519,
        signet::hsm::PublicKey::Rsa { .. } => SignScheme::RsaPssSha256,
    }
}
