"""Writes each fuzz target's seed corpus (fuzz/corpus/<target>/seed-*) from the test vectors
(../shared/vectors/standards.json, next to the repository) and the repository's configs."""

import base64
import json
import pathlib
import sys

FUZZ = pathlib.Path(__file__).resolve().parent
REPO = FUZZ.parent
VECTORS = REPO.parent / "shared" / "vectors" / "standards.json"


def write(target: str, name: str, data: bytes) -> None:
    d = FUZZ / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


def message(m: dict) -> dict:
    out = {k: m[k] for k in ("method", "target_uri", "status") if k in m}
    out["headers"] = m.get("headers", [])
    if m.get("body") is not None:
        out["body"] = base64.b64encode(m["body"].encode()).decode()
    return out


def main() -> None:
    v = json.loads(VECTORS.read_text()) if VECTORS.exists() else {}
    if not v:
        print(f"warning: {VECTORS} not found; seeding from configs only", file=sys.stderr)
    for i, t in enumerate(v.get("rfc9421", [])):
        if "message" not in t:
            continue
        req = {"message": message(t["message"]), "covered": t["covered"], "label": t["label"]}
        if t.get("request"):
            req["request"] = message(t["request"])
        for p in ("created", "expires", "nonce", "tag"):
            if p in t.get("params", {}):
                req[p] = t["params"][p]
        write("http_sig_prepare", f"rfc9421-{i}", json.dumps(req).encode())
        req["content_digest"] = "sha-256"
        write("http_sig_prepare", f"rfc9421-{i}-digest", json.dumps(req).encode())
        verify = f"{t['signature_input']}\n{t['signature']}\n{json.dumps(message(t['message']))}"
        write("http_sig_verify", f"rfc9421-{i}", verify.encode())
    for i, t in enumerate(v.get("rfc9530", [])):
        req = {
            "message": {
                "method": "POST",
                "target_uri": "https://example.com/",
                "headers": [["Content-Digest", f"sha-256=:{t['sha-256']}:"]],
                "body": base64.b64encode(t["content"].encode()).decode(),
            },
            "covered": ["content-digest", "@method"],
            "content_digest": "sha-512",
        }
        write("http_sig_prepare", f"rfc9530-{i}", json.dumps(req).encode())
    a4 = v.get("rfc8037_a4")
    claims = [
        {"iss": "https://as.example.test", "sub": "alice", "aud": "rp", "iat": 1700000000,
         "exp": 1700000300, "nonce": "n", "typ": "JWT"},
        {"iss": "https://as.example.test", "sub": "alice", "aud": "rs", "iat": 1700000000,
         "exp": 1700000300, "client_id": "c", "jti": "j", "typ": "at+jwt"},
        {"iss": "https://as.example.test", "aud": "rp", "iat": 1700000000, "jti": "j",
         "events": {"http://schemas.openid.net/event/backchannel-logout": {}}, "sid": "s"},
    ]
    if a4:
        payload = a4["payload"] + "=" * (-len(a4["payload"]) % 4)
        claims.append({"payload": base64.urlsafe_b64decode(payload).decode(errors="replace")})
    for i, c in enumerate(claims):
        for p in range(7):
            write("claims", f"{i}-{p}", bytes([p]) + json.dumps(c).encode())
    # sign/compact: the RFC 8037 A.4 signing input, and JWT-shaped inputs from the claims above.
    if a4:
        write("sign_compact", "rfc8037-a4", f"{a4['protected']}.{a4['payload']}".encode())
    b64 = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
    for i, c in enumerate(claims[:3]):
        for alg, typ in (("ES256", "JWT"), ("PS256", "at+jwt"), ("EdDSA", "logout+jwt")):
            header = {"alg": alg, "kid": "k1", "typ": typ}
            write("sign_compact", f"{i}-{alg}", f"{b64(header)}.{b64(c)}".encode())
    for path in sorted((REPO / "config").glob("*.toml")):
        write("config", path.stem, path.read_bytes())


if __name__ == "__main__":
    main()
