#!/usr/bin/env python3
"""Verifies an RFC 9421 signature made by Signet with an independent implementation
(the `http-message-signatures` package, on `cryptography`), using only a JWKS.

Reads one JSON object on stdin:
  {"message": {"method", "target_uri", "status", "headers": [[n, v]...], "body": "<base64>"},
   "request": {...same shape, for a response...} | null,
   "signature_input": "<dictionary member>", "signature": "<dictionary member>",
   "jwks": {"keys": [...]}, "tag": "<expected tag>", "require": ["@method", ...]}
The key is the JWK whose kid is the signature's keyid; the algorithm is the JWK's `alg`.
Prints {"label", "parameters", "covered", "body_verified"} and exits 0 when the signature
verifies; prints the reason on stderr and exits 1 otherwise.
"""

import base64
import json
import sys
from types import SimpleNamespace

import http_sf
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, algorithms

ALGORITHMS = {
    "EdDSA": algorithms.ED25519,
    "Ed25519": algorithms.ED25519,
    "ES256": algorithms.ECDSA_P256_SHA256,
    "PS512": algorithms.RSA_PSS_SHA512,
}


class Headers:
    """Field lines in order, repeated names kept as separate lines."""

    def __init__(self, lines):
        self.lines = [(n, v) for n, v in lines]

    def items(self):
        return list(self.lines)

    def __iter__(self):
        return iter(dict.fromkeys(n for n, _ in self.lines))

    def __contains__(self, name):
        return any(n.lower() == name.lower() for n, _ in self.lines)

    def __setitem__(self, name, value):
        del self[name]
        self.lines.append((name, value))

    def __delitem__(self, name):
        self.lines = [(n, v) for n, v in self.lines if n.lower() != name.lower()]


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def public_key(jwk):
    if jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(b64url(jwk["x"]))
    if jwk["kty"] == "EC" and jwk["crv"] == "P-256":
        x, y = (int.from_bytes(b64url(jwk[c]), "big") for c in ("x", "y"))
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    if jwk["kty"] == "RSA":
        n, e = (int.from_bytes(b64url(jwk[c]), "big") for c in ("n", "e"))
        return rsa.RSAPublicNumbers(e, n).public_key()
    raise ValueError(f"unsupported JWK {jwk}")


class JwksResolver(HTTPSignatureKeyResolver):
    def __init__(self, jwks):
        self.keys = {k["kid"]: k for k in jwks["keys"]}

    def resolve_public_key(self, key_id):
        jwk = self.keys.get(key_id)
        return public_key(jwk) if jwk else None


def request_of(m):
    return SimpleNamespace(method=m["method"], url=m["target_uri"], headers=Headers(m.get("headers", [])))


def main():
    doc = json.load(sys.stdin)
    m, extra = doc["message"], [("Signature-Input", doc["signature_input"]), ("Signature", doc["signature"])]
    if doc.get("request") is not None or m.get("status") is not None:
        message = SimpleNamespace(
            status_code=m["status"],
            headers=Headers(m.get("headers", []) + extra),
            request=request_of(doc["request"]) if doc.get("request") else None,
        )
    else:
        message = request_of(m)
        message.headers = Headers(m.get("headers", []) + extra)

    inputs = http_sf.parse(doc["signature_input"].encode(), tltype="dictionary")
    (_, (_, params)), = inputs.items()
    resolver = JwksResolver(doc["jwks"])
    jwk = resolver.keys[params["keyid"]]
    verifier = HTTPMessageVerifier(signature_algorithm=ALGORITHMS[jwk["alg"]], key_resolver=resolver)
    body = base64.b64decode(m["body"]) if m.get("body") is not None else None
    results = verifier.verify(
        message,
        expect_tag=doc.get("tag"),
        require_components=doc.get("require", ()),
        body=body,
    )
    (result,) = results
    json.dump(
        {
            "label": result.label,
            "parameters": result.parameters,
            "covered": list(result.covered_components),
            "body_verified": result.body is not None,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the test shows the reason
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
