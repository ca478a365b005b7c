// One FAPI 2.0 flow against the demo AS, driven by the certified RP library openid-client 6:
// PAR with PKCE S256, private_key_jwt, DPoP (with nonces), a JARM authorization response, the
// token request (ID token, DPoP-bound access token) and a JWT introspection response. The user
// agent (login and consent of the development interactions) is plain fetch with a cookie jar.
//
// Every JWT is then verified with panva `jose` (not the library that made or checked it) against
// the AS's JWKS and against Signet's JWKS.

import { readFileSync } from 'node:fs';

import * as client from 'openid-client';
import { createLocalJWKSet, decodeProtectedHeader, importJWK, jwtVerify } from 'jose';

const REDIRECT = 'http://127.0.0.1:3001/cb';

/** The demo client's private key (demo only). */
export async function demoClientKey() {
  const url = new URL('./demo-client.jwk.json', import.meta.url);
  const jwk = JSON.parse(readFileSync(url, 'utf8'));
  return { key: await importJWK(jwk, 'ES256'), kid: jwk.kid };
}

/** openid-client's view of the demo AS, with every response body of interest recorded. */
export async function discover(issuer) {
  const { key, kid } = await demoClientKey();
  const recorded = [];
  const config = await client.discovery(
    new URL(issuer),
    'demo-fapi-client',
    {
      id_token_signed_response_alg: 'PS256',
      authorization_signed_response_alg: 'ES256',
      introspection_signed_response_alg: 'ES256',
    },
    client.PrivateKeyJwt({ key, kid }),
    { execute: [client.allowInsecureRequests] },
  );
  client.useJwtResponseMode(config);
  // Keep the raw introspection response (a JWT) to verify it independently.
  config[client.customFetch] = async (url, options) => {
    const res = await fetch(url, options);
    if (String(url).endsWith('/token/introspection') && res.ok) {
      recorded.push(await res.clone().text());
    }
    return res;
  };
  return { config, recorded };
}

/** A cookie jar good enough for one user agent on one host. */
class UserAgent {
  #cookies = new Map();

  async get(url, init = {}) {
    const res = await fetch(url, {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers ?? {}), cookie: [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      const [name, value] = [pair.slice(0, i).trim(), pair.slice(i + 1).trim()];
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(c)) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
    return res;
  }

  /** Follows redirects until one leaves for `stop` (the client's redirect URI). */
  async follow(start, stop, submit) {
    let url = new URL(start);
    for (let i = 0; i < 20; i++) {
      if (url.href.startsWith(stop)) return url;
      let res = await this.get(url);
      if (res.status === 200 && url.pathname.startsWith('/interaction/')) {
        await res.text();
        res = await this.get(url, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(submit(url)).toString(),
        });
      }
      const location = res.headers.get('location');
      if (!location) {
        throw new Error(`user agent: ${res.status} at ${url.href}: ${(await res.text()).slice(0, 300)}`);
      }
      await res.arrayBuffer();
      url = new URL(location, url);
    }
    throw new Error('user agent: too many redirects');
  }
}

/** Runs one flow; returns the JWTs it got (`jarm`, `id_token`, `introspection`) and details. */
export async function runFlow({ config, recorded }, { sub = 'alice' } = {}) {
  const dpopKeys = await client.randomDPoPKeyPair('ES256');
  const DPoP = client.getDPoPHandle(config, dpopKeys);
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const authUrl = await client.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: REDIRECT,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  }, { DPoP });
  const seen = new Set();
  const callback = await new UserAgent().follow(authUrl, REDIRECT, (url) => {
    const first = !seen.has('login');
    seen.add('login');
    return first ? { prompt: 'login', login: sub, password: 'any' } : { prompt: 'consent' };
  });
  const jarm = callback.searchParams.get('response');
  if (!jarm) throw new Error(`no JARM response in ${callback.href}`);
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  }, undefined, { DPoP });
  if (tokens.token_type?.toLowerCase() !== 'dpop') throw new Error(`token_type ${tokens.token_type}`);
  const before = recorded.length;
  const introspected = await client.tokenIntrospection(config, tokens.access_token);
  const introspection = recorded[before];
  if (!introspection) throw new Error('no JWT introspection response recorded');
  if (introspected.active !== true || !introspected.cnf?.jkt) {
    throw new Error(`introspection: ${JSON.stringify(introspected)}`);
  }
  return {
    jwts: { jarm, id_token: tokens.id_token, introspection },
    sub: tokens.claims()?.sub,
    jkt: introspected.cnf.jkt,
  };
}

/** A JWKS document (no cache: a new kid must be seen at once). */
export async function fetchJwks(url) {
  const res = await fetch(url, { headers: { 'cache-control': 'no-cache' } });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return res.json();
}

/**
 * Verifies every JWT with `jose` against each JWKS of `jwksUrls`: for each, its kid and alg, and
 * the names of the JWKS it verified against.
 */
export async function verifyAll(jwts, jwksUrls, issuer) {
  const sets = await Promise.all(jwksUrls.map(async (u) => [u, createLocalJWKSet(await fetchJwks(u))]));
  const out = {};
  for (const [name, jwt] of Object.entries(jwts)) {
    const { kid, alg } = decodeProtectedHeader(jwt);
    for (const [url, jwks] of sets) {
      const { payload } = await jwtVerify(jwt, jwks, { issuer, algorithms: [alg] }).catch((err) => {
        throw new Error(`${name} (kid ${kid}) does not verify against ${url}: ${err.message}`);
      });
      if (payload.iss !== issuer) throw new Error(`${name}: iss ${payload.iss}`);
    }
    out[name] = { kid, alg };
  }
  return out;
}
