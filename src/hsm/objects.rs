//! Key objects in the token: generation templates, lookup by `CKA_ID` / `CKA_LABEL`, reading the
//! public half, relabelling and destruction.

use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::attributes::{self, TokenKey};
use super::{HsmError, KeySpec};

/// DER OID of P-256 (prime256v1).
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER OID of P-384 (secp384r1).
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
/// DER OID of Ed25519 (RFC 8410).
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// DER PrintableString "edwards25519", the older form some tokens use.
const NAME_ED25519: &[u8] = b"\x13\x0cedwards25519";

/// The public half of a key pair as the token holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Uncompressed point X||Y coordinates.
    EcP256 {
        x: Vec<u8>,
        y: Vec<u8>,
    },
    EcP384 {
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Rsa {
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
    Ed25519 {
        a: Vec<u8>,
    },
}

pub(super) fn generate(
    s: &Session,
    spec: KeySpec,
    id: &[u8],
    label: &str,
) -> Result<PublicKey, HsmError> {
    let mut public = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::Id(id.to_vec()),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    let private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::SignRecover(false),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Id(id.to_vec()),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    let mechanism = match spec {
        KeySpec::EcP256 | KeySpec::EcP384 => {
            let oid = if spec == KeySpec::EcP256 {
                OID_P256
            } else {
                OID_P384
            };
            public.push(Attribute::EcParams(oid.to_vec()));
            Mechanism::EccKeyPairGen
        }
        KeySpec::Ed25519 => {
            public.push(Attribute::EcParams(OID_ED25519.to_vec()));
            Mechanism::EccEdwardsKeyPairGen
        }
        KeySpec::Rsa { bits } => {
            public.push(Attribute::ModulusBits(u64::from(bits).into()));
            public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            Mechanism::RsaPkcsKeyPairGen
        }
    };
    let (pub_handle, _) = s
        .generate_key_pair(&mechanism, &public, &private)
        .map_err(HsmError::call("C_GenerateKeyPair"))?;
    read_public(s, pub_handle)
}

/// The one object `template` matches: several are [`HsmError::Ambiguous`] (`what` names the
/// search), never resolved by taking the first.
fn find_one(
    s: &Session,
    template: &[Attribute],
    what: impl FnOnce() -> String,
) -> Result<Option<ObjectHandle>, HsmError> {
    let found = s
        .find_objects(template)
        .map_err(HsmError::call("C_FindObjects"))?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(HsmError::Ambiguous {
            what: what(),
            count: many.len(),
        }),
    }
}

pub(super) fn find_private(s: &Session, id: &[u8]) -> Result<ObjectHandle, HsmError> {
    find_one(
        s,
        &[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(id.to_vec()),
        ],
        || format!("private keys with CKA_ID {}", hex::encode(id)),
    )?
    .ok_or_else(|| HsmError::KeyNotFound(hex::encode(id)))
}

fn find_public(s: &Session, id: &[u8]) -> Result<ObjectHandle, HsmError> {
    find_one(
        s,
        &[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(id.to_vec()),
        ],
        || format!("public keys with CKA_ID {}", hex::encode(id)),
    )?
    .ok_or_else(|| HsmError::KeyNotFound(format!("{} (public key object)", hex::encode(id))))
}

pub(super) fn public_key(s: &Session, id: &[u8]) -> Result<PublicKey, HsmError> {
    let handle = find_public(s, id)?;
    read_public(s, handle)
}

pub(super) fn id_by_label(s: &Session, label: &str) -> Result<Vec<u8>, HsmError> {
    let handle = find_one(
        s,
        &[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ],
        || format!("private keys labelled `{label}`"),
    )?
    .ok_or_else(|| HsmError::KeyNotFound(format!("(label `{label}`)")))?;
    let attrs = s
        .get_attributes(handle, &[AttributeType::Id])
        .map_err(HsmError::call("C_GetAttributeValue"))?;
    attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::Id(id) => Some(id),
            _ => None,
        })
        .ok_or_else(|| HsmError::Malformed(format!("private key `{label}` has no CKA_ID")))
}

pub(super) fn list(s: &Session, prefix: &str) -> Result<Vec<TokenKey>, HsmError> {
    let handles = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .map_err(HsmError::call("C_FindObjects"))?;
    let mut out = Vec::new();
    for h in handles {
        match listed(s, h, prefix) {
            Ok(Some(key)) => out.push(key),
            Ok(None) => {}
            // Destroyed by another session (a replica, another process) since C_FindObjects:
            // it is simply no longer in the token.
            Err(e) if e.rv() == Some(RvError::ObjectHandleInvalid) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The private key `h` if its label starts with `prefix`.
fn listed(s: &Session, h: ObjectHandle, prefix: &str) -> Result<Option<TokenKey>, HsmError> {
    let attrs = s
        .get_attributes(h, &[AttributeType::Id, AttributeType::Label])
        .map_err(HsmError::call("C_GetAttributeValue"))?;
    let (mut id, mut label) = (Vec::new(), String::new());
    for a in attrs {
        match a {
            Attribute::Id(v) => id = v,
            Attribute::Label(v) => label = String::from_utf8_lossy(&v).into_owned(),
            _ => {}
        }
    }
    if !label.starts_with(prefix) {
        return Ok(None);
    }
    let attributes = attributes::of_handle(s, h)?;
    Ok(Some(TokenKey {
        id,
        label,
        attributes,
    }))
}

pub(super) fn relabel(
    s: &Session,
    old_id: &[u8],
    new_id: &[u8],
    label: &str,
) -> Result<(), HsmError> {
    let private = find_private(s, old_id)?;
    let public = find_public(s, old_id)?;
    let template = [
        Attribute::Id(new_id.to_vec()),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    s.update_attributes(public, &template)
        .map_err(HsmError::call("C_SetAttributeValue"))?;
    s.update_attributes(private, &template)
        .map_err(HsmError::call("C_SetAttributeValue"))
}

/// Turns off every use of the private key `id` but signing (for imported keys).
pub(super) fn restrict_to_sign(s: &Session, id: &[u8]) -> Result<(), HsmError> {
    let private = find_private(s, id)?;
    let template = [
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
    ];
    s.update_attributes(private, &template)
        .map_err(HsmError::call("C_SetAttributeValue"))
}

pub(super) fn destroy(s: &Session, id: &[u8]) -> Result<(), HsmError> {
    // Only the private object goes: the public object is harmless, and keeping it lets the token
    // (not only the store) still verify archived signatures.
    let private = find_private(s, id)?;
    s.destroy_object(private)
        .map_err(HsmError::call("C_DestroyObject"))
}

fn read_public(s: &Session, handle: ObjectHandle) -> Result<PublicKey, HsmError> {
    let attrs = s
        .get_attributes(handle, &[AttributeType::KeyType])
        .map_err(HsmError::call("C_GetAttributeValue"))?;
    let key_type = attrs.into_iter().find_map(|a| match a {
        Attribute::KeyType(t) => Some(t),
        _ => None,
    });
    let get = |types: &[AttributeType]| {
        s.get_attributes(handle, types)
            .map_err(HsmError::call("C_GetAttributeValue"))
    };
    match key_type {
        Some(KeyType::RSA) => {
            let (mut modulus, mut exponent) = (Vec::new(), Vec::new());
            for a in get(&[AttributeType::Modulus, AttributeType::PublicExponent])? {
                match a {
                    Attribute::Modulus(v) => modulus = v,
                    Attribute::PublicExponent(v) => exponent = v,
                    _ => {}
                }
            }
            if modulus.is_empty() || exponent.is_empty() {
                return Err(HsmError::Malformed("RSA public key without modulus".into()));
            }
            Ok(PublicKey::Rsa { modulus, exponent })
        }
        Some(KeyType::EC) | Some(KeyType::EC_EDWARDS) => {
            let (mut params, mut point) = (Vec::new(), Vec::new());
            for a in get(&[AttributeType::EcParams, AttributeType::EcPoint])? {
                match a {
                    Attribute::EcParams(v) => params = v,
                    Attribute::EcPoint(v) => point = v,
                    _ => {}
                }
            }
            ec_public(&params, &point)
        }
        other => Err(HsmError::Malformed(format!(
            "unsupported key type {other:?}"
        ))),
    }
}

/// Decodes CKA_EC_POINT, which tokens give DER-wrapped (`04 len ...`) or, rarely, raw.
fn ec_public(params: &[u8], point: &[u8]) -> Result<PublicKey, HsmError> {
    let unwrap = |raw_len: usize| -> Option<&[u8]> {
        match point.len() {
            n if n == raw_len => Some(point),
            n if n == raw_len + 2 && point[0] == 0x04 && usize::from(point[1]) == raw_len => {
                Some(&point[2..])
            }
            _ => None,
        }
    };
    let bad = || HsmError::Malformed(format!("EC point of {} bytes", point.len()));
    if params == OID_ED25519 || params == NAME_ED25519 {
        let a = unwrap(32).ok_or_else(bad)?;
        return Ok(PublicKey::Ed25519 { a: a.to_vec() });
    }
    let coord = if params == OID_P256 {
        32
    } else if params == OID_P384 {
        48
    } else {
        return Err(HsmError::Malformed(format!(
            "unsupported curve {}",
            hex::encode(params)
        )));
    };
    let p = unwrap(1 + 2 * coord).ok_or_else(bad)?;
    if p[0] != 0x04 {
        return Err(HsmError::Malformed("compressed EC point".into()));
    }
    let (x, y) = (p[1..=coord].to_vec(), p[1 + coord..].to_vec());
    Ok(if coord == 32 {
        PublicKey::EcP256 { x, y }
    } else {
        PublicKey::EcP384 { x, y }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_points_wrapped_and_raw() {
        let mut raw = vec![0x04];
        raw.extend([1u8; 32]);
        raw.extend([2u8; 32]);
        let mut wrapped = vec![0x04, 0x41];
        wrapped.extend(&raw);
        for p in [&raw, &wrapped] {
            match ec_public(OID_P256, p).unwrap() {
                PublicKey::EcP256 { x, y } => assert_eq!((x[0], y[0]), (1, 2)),
                other => panic!("{other:?}"),
            }
        }
        let mut ed = vec![0x04, 0x20];
        ed.extend([7u8; 32]);
        assert_eq!(
            ec_public(OID_ED25519, &ed).unwrap(),
            PublicKey::Ed25519 { a: vec![7; 32] }
        );
        assert!(ec_public(OID_P256, &ed).is_err());
    }
}
