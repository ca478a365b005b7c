// The adapter against a stand-in for Signet's two routes (a local HTTP server that signs with
// software keys it made itself): what the adapter sends, how it follows the schedule, its retry
// on 409 kid_not_active, the JWKS it publishes, and that oidc-provider accepts its keys and signs
// with them. The end-to-end test against the real Signet and SoftHSM is tests/oidc_provider.rs.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHash, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { after, before, test } from 'node:test';

import Provider from 'oidc-provider';
import { compactVerify, createLocalJWKSet, jwtVerify } from 'jose';

import { SignetKeystore, SignetSigningKey, SignetError } from '../signet-keystore.js';

function thumbprint(jwk) {
  const members = jwk.kty === 'RSA' ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
    : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

function makeKey(alg) {
  const { privateKey, publicKey } = alg === 'PS256'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pub = publicKey.export({ format: 'jwk' });
  const kid = thumbprint(pub);
  return { privateKey, kid, alg, jwk: { ...pub, kid, alg, use: 'sig' } };
}

function rawSign(key, data) {
  if (key.alg === 'PS256') {
    return cryptoSign('sha256', data, { key: key.privateKey, padding: 6, saltLength: 32 });
  }
  return cryptoSign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
}

/** A stand-in Signet: key sets with an active, a next and retired keys, and a request log. */
class FakeSignet {
  sets = new Map();
  requests = [];
  refuseOnce = new Set();

  addSet(name, alg) {
    this.sets.set(name, { active: makeKey(alg), activeAt: Date.now() - 1000, next: makeKey(alg), nextAt: Date.now() + 3600e3, retired: [] });
  }

  rotate(name, nextAt = Date.now()) {
    const s = this.sets.get(name);
    s.retired.unshift({ key: s.active, at: s.activeAt });
    s.active = s.next;
    s.activeAt = nextAt;
    s.next = makeKey(s.active.alg);
    s.nextAt = Date.now() + 3600e3;
  }

  schedule(name) {
    const s = this.sets.get(name);
    const entry = (k, at) => ({ kid: k.kid, alg: k.alg, jwk: k.jwk, activate_at: new Date(at).toISOString() });
    return { active: entry(s.active, s.activeAt), next: entry(s.next, s.nextAt), retired: s.retired.map((r) => entry(r.key, r.at)) };
  }

  handle(req, res, body) {
    const m = req.url.match(/^\/v1\/key-sets\/([^/]+)\/(signing-key|sign\/compact)$/);
    const answer = (status, json) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(json)); };
    this.requests.push({ method: req.method, url: req.url, auth: req.headers.authorization, body });
    const set = m && this.sets.get(m[1]);
    if (!set) return answer(404, { code: 'key_set_not_found' });
    if (m[2] === 'signing-key') return answer(200, this.schedule(m[1]));
    const input = JSON.parse(body).signing_input;
    const header = JSON.parse(Buffer.from(input.split('.')[0], 'base64url'));
    if (header.kid !== set.active.kid || this.refuseOnce.delete(header.kid)) {
      return answer(409, { code: 'kid_not_active', active_kid: set.active.kid, next_kid: set.next.kid });
    }
    const signature = rawSign(set.active, Buffer.from(input)).toString('base64url');
    return answer(200, { signature, jws: `${input}.${signature}`, kid: set.active.kid, alg: set.active.alg });
  }
}

const signet = new FakeSignet();
let server;
let url;

before(async () => {
  signet.addSet('ps', 'PS256');
  signet.addSet('es', 'ES256');
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => signet.handle(req, res, body));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${server.address().port}`;
});

after(() => server.close());

test('a key set is one key object with the active key; sign posts the exact signing input', async () => {
  const ks = await SignetKeystore.create({ url, token: 't0k', keySets: ['es'], keyRefresh: 60_000 });
  try {
    const [key] = ks.keys;
    assert.ok(key instanceof SignetSigningKey);
    assert.equal(key.kid, signet.sets.get('es').active.kid);
    assert.equal(key.alg, 'ES256');
    assert.equal(key.kty, 'EC');
    const header = Buffer.from(JSON.stringify({ alg: 'ES256', kid: key.kid })).toString('base64url');
    const input = `${header}.${Buffer.from('{"a":1}').toString('base64url')}`;
    const sig = await key.sign(Buffer.from(input));
    assert.equal(sig.length, 64, 'raw r||s');
    const last = signet.requests.at(-1);
    assert.equal(last.auth, 'Bearer t0k');
    assert.deepEqual(JSON.parse(last.body), { signing_input: input });
    const jwks = createLocalJWKSet(ks.publishedJwks());
    await compactVerify(`${input}.${sig.toString('base64url')}`, jwks);
  } finally {
    ks.stop();
  }
});

test('nothing in the adapter holds a private key', async () => {
  const ks = await SignetKeystore.create({ url, token: 't', keySets: ['es', 'ps'], keyRefresh: 60_000 });
  try {
    for (const key of ks.keys) {
      assert.equal(key.keyObject().type, 'public');
      assert.equal(key.d, undefined);
    }
    for (const jwk of ks.publishedJwks().keys) {
      for (const m of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.equal(jwk[m], undefined);
    }
  } finally {
    ks.stop();
  }
});

test('the key object follows a rotation at refresh; the JWKS keeps active, next and retired', async () => {
  const ks = await SignetKeystore.create({ url, token: 't', keySets: ['es'], keyRefresh: 60_000 });
  try {
    const before = ks.keys[0].kid;
    signet.rotate('es');
    await ks.refresh();
    const s = signet.sets.get('es');
    assert.equal(ks.keys[0].kid, s.active.kid);
    assert.notEqual(ks.keys[0].kid, before);
    assert.deepEqual(ks.publishedJwks().keys.map((k) => k.kid), [s.active.kid, s.next.kid, before]);
    assert.equal(ks.keys[0].keyObject().asymmetricKeyType, 'ec');
  } finally {
    ks.stop();
  }
});

test('the key object switches to the next key at its activate_at by its own clock', async () => {
  const key = new SignetSigningKey(null, 'x', {
    active: { kid: 'a', alg: 'ES256', jwk: signet.sets.get('es').active.jwk, activate_at: new Date(0).toISOString() },
    next: { kid: 'b', alg: 'ES256', jwk: signet.sets.get('es').next.jwk, activate_at: new Date(Date.now() + 150).toISOString() },
    retired: [],
  });
  assert.equal(key.kid, 'a');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(key.kid, 'b');
  key.stop();
});

test('409 kid_not_active: the schedule is read again and the input tried once more', async () => {
  const ks = await SignetKeystore.create({ url, token: 't', keySets: ['es'], keyRefresh: 60_000 });
  try {
    const [key] = ks.keys;
    const header = Buffer.from(JSON.stringify({ alg: 'ES256', kid: key.kid })).toString('base64url');
    const input = `${header}.${Buffer.from('{}').toString('base64url')}`;
    signet.refuseOnce.add(key.kid);
    const n = signet.requests.length;
    await key.sign(Buffer.from(input));
    const urls = signet.requests.slice(n).map((r) => r.url);
    assert.deepEqual(urls, ['/v1/key-sets/es/sign/compact', '/v1/key-sets/es/signing-key', '/v1/key-sets/es/sign/compact']);
    // A kid that may not sign at all: one retry, then the error reaches oidc-provider.
    const stale = Buffer.from(JSON.stringify({ alg: 'ES256', kid: 'gone' })).toString('base64url');
    await assert.rejects(key.sign(Buffer.from(`${stale}.e30`)), (err) => err instanceof SignetError && err.code === 'kid_not_active');
  } finally {
    ks.stop();
  }
});

test('oidc-provider accepts the keys, serves Signet\'s keys at /jwks and signs an ID token with them', async () => {
  const ks = await SignetKeystore.create({ url, token: 't', keySets: ['ps', 'es'], keyRefresh: 60_000 });
  const issuer = 'http://127.0.0.1:3999';
  const provider = new Provider(issuer, {
    jwks: ks.jwks(),
    features: { externalSigningSupport: { enabled: true, ack: 'experimental-01' } },
    clients: [{ client_id: 'c', client_secret: 'secret-secret-secret-secret-secret', redirect_uris: ['https://rp.example.test/cb'], id_token_signed_response_alg: 'PS256' }],
  });
  provider.use(ks.jwksMiddleware());
  const srv = provider.listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  try {
    const base = `http://127.0.0.1:${srv.address().port}`;
    const jwks = await (await fetch(`${base}/jwks`)).json();
    assert.deepEqual(jwks, ks.publishedJwks());
    const client = await provider.Client.find('c');
    const token = new provider.IdToken({ sub: 'alice', nonce: 'n' }, { ctx: undefined, client });
    const idToken = await token.issue({ use: 'idtoken' });
    const { protectedHeader, payload } = await jwtVerify(idToken, createLocalJWKSet(jwks), { issuer });
    assert.equal(protectedHeader.kid, signet.sets.get('ps').active.kid);
    assert.equal(protectedHeader.alg, 'PS256');
    assert.equal(payload.aud, 'c', JSON.stringify(payload));
  } finally {
    srv.close();
    ks.stop();
  }
});
