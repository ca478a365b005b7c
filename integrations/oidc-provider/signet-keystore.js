// oidc-provider keys whose private half stays in Signet's HSM.
//
// `SignetKeystore.create({ url, token, keySets })` reads each key set's signing keys from Signet
// (`GET /v1/key-sets/{set}/signing-key`) and gives one `ExternalSigningKey` per key set for
// oidc-provider's `jwks.keys`. Its `sign(data)` posts oidc-provider's signing input to
// `POST /v1/key-sets/{set}/sign/compact` and returns the raw JWS signature. Nothing here holds or
// ever sees a private key.
//
// Rotation. oidc-provider fixes its keystore when the Provider is built and picks a signing key
// by kty/crv/alg only, so each key set is one key object whose kid and public key follow Signet's
// schedule: the object switches to the next key at its `activate_at` (a timer) and re-reads the
// schedule every `keyRefresh` ms (which catches forced rotations and revocations). Signet lets the
// key a rotation superseded sign for `activation_grace` (default 30 s) more, so a switch up to that
// late costs no request. On 409 `kid_not_active` the key set is re-read at once and the call tried
// once more (a replica of Signet that had not yet seen the new key); if the header names a key
// that may no longer sign (a revoked one) the request fails and the next one uses the new key.
//
// oidc-provider serves `/jwks` from a copy made at start-up: mount `keystore.jwksMiddleware()`
// with `provider.use(...)` so that the AS's JWKS publishes Signet's active, next and retired
// keys of every key set, as Signet's own JWKS does.

import { createPublicKey } from 'node:crypto';

import { ExternalSigningKey } from 'oidc-provider';

/** A Signet error answer (RFC 9457 problem), with its `code`. */
export class SignetError extends Error {
  constructor(status, problem) {
    super(`Signet answered ${status} ${problem?.code ?? ''}: ${problem?.detail ?? ''}`);
    this.name = 'SignetError';
    this.status = status;
    this.code = problem?.code;
    this.problem = problem;
  }
}

/** The public members of a JWK (what oidc-provider's keystore reads from a key object). */
const PUBLIC = ['kty', 'crv', 'x', 'y', 'e', 'n'];

/** One Signet key set as one oidc-provider signing key. */
export class SignetSigningKey extends ExternalSigningKey {
  #client;
  #set;
  #current;
  #schedule = { active: undefined, next: null, retired: [] };
  #keyObjects = new Map();
  #timer;

  constructor(client, set, schedule) {
    super();
    this.#client = client;
    this.#set = set;
    this.update(schedule);
  }

  /** The key set's name in Signet. */
  get keySet() {
    return this.#set;
  }

  get kid() {
    return this.#current.kid;
  }

  // oidc-provider assigns kid, alg and use while registering the key; the values are Signet's.
  set kid(_value) {}

  get alg() {
    return this.#current.alg;
  }

  set alg(_value) {}

  get kty() { return this.#current.jwk.kty; }

  get crv() { return this.#current.jwk.crv; }

  get x() { return this.#current.jwk.x; }

  get y() { return this.#current.jwk.y; }

  get e() { return this.#current.jwk.e; }

  get n() { return this.#current.jwk.n; }

  /** Signet's schedule for this key set as last read: `{active, next, retired}`. */
  get schedule() {
    return this.#schedule;
  }

  /** The public key of the current signing key (oidc-provider verifies its own tokens with it). */
  keyObject() {
    const { kid, jwk } = this.#current;
    if (!this.#keyObjects.has(kid)) {
      const publicJwk = Object.fromEntries(PUBLIC.filter((m) => jwk[m] !== undefined).map((m) => [m, jwk[m]]));
      this.#keyObjects.set(kid, createPublicKey({ key: publicJwk, format: 'jwk' }));
    }
    return this.#keyObjects.get(kid);
  }

  /** Signs oidc-provider's `BASE64URL(header).BASE64URL(payload)`: the raw JWS signature. */
  async sign(data) {
    const signingInput = Buffer.isBuffer(data) ? data.toString('ascii') : String(data);
    try {
      return await this.#client.signCompact(this.#set, signingInput);
    } catch (err) {
      if (!(err instanceof SignetError) || err.code !== 'kid_not_active') throw err;
      // A Signet replica may not have seen a new key yet, or this keystore is late: read the
      // schedule again (later tokens take the new key) and try this signing input once more.
      await this.refresh();
      return this.#client.signCompact(this.#set, signingInput);
    }
  }

  /** Re-reads the key set's schedule from Signet. */
  async refresh() {
    this.update(await this.#client.signingKeys(this.#set));
  }

  /** Takes a schedule `{active, next, retired}` (the body of `GET .../signing-key`). */
  update(schedule) {
    if (!schedule?.active?.kid || !schedule.active.jwk) {
      throw new Error(`Signet key set ${this.#set} has no active key`);
    }
    this.#schedule = schedule;
    this.#current = schedule.active;
    clearTimeout(this.#timer);
    const next = schedule.next;
    if (next?.jwk) {
      const wait = Date.parse(next.activate_at) - Date.now();
      // A key is published for min_publish before it signs; switch by this process's clock at
      // its activation (Signet's activation_grace covers a clock that is a little behind).
      if (wait <= 0) {
        this.#current = next;
      } else if (wait < 2 ** 31) {
        this.#timer = setTimeout(() => { this.#current = next; }, wait);
        this.#timer.unref?.();
      }
    }
  }

  /** Every published key of the key set, as JWKs: active, next, retired. */
  publishedJwks() {
    const { active, next, retired } = this.#schedule;
    return [active, next, ...(retired ?? [])].filter((k) => k?.jwk).map((k) => ({ ...k.jwk }));
  }

  stop() {
    clearTimeout(this.#timer);
  }
}

/** A small client of Signet's signing API (bearer token of a client with role signer). */
export class SignetClient {
  constructor({ url, token, fetch: fetchImpl = globalThis.fetch, timeout = 5000 }) {
    this.url = url.replace(/\/+$/, '');
    this.token = token;
    this.fetch = fetchImpl;
    this.timeout = timeout;
  }

  async #call(method, path, body) {
    const res = await this.fetch(`${this.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(this.timeout),
    });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = { detail: text }; }
    if (!res.ok) throw new SignetError(res.status, json);
    return json;
  }

  /** `GET /v1/key-sets/{set}/signing-key`. */
  signingKeys(set) {
    return this.#call('GET', `/v1/key-sets/${encodeURIComponent(set)}/signing-key`);
  }

  /** `POST /v1/key-sets/{set}/sign/compact`: the signature bytes. */
  async signCompact(set, signingInput) {
    const out = await this.#call('POST', `/v1/key-sets/${encodeURIComponent(set)}/sign/compact`, {
      signing_input: signingInput,
    });
    return Buffer.from(out.signature, 'base64url');
  }
}

/** Signet's key sets as oidc-provider keys, kept in step with Signet's schedule. */
export class SignetKeystore {
  #keys;
  #interval;
  #onError;

  constructor(keys, { keyRefresh, onError }) {
    this.#keys = keys;
    this.#onError = onError;
    this.#interval = setInterval(() => this.refresh().catch(() => {}), keyRefresh);
    this.#interval.unref?.();
  }

  /**
   * `url`: Signet's base URL; `token`: a signer's bearer token; `keySets`: Signet key set names
   * (one per algorithm the AS signs with, e.g. `['oidc-ps256', 'oidc-es256']`); `keyRefresh`: how
   * often to re-read the schedule, ms (default 5000, Signet's own default `key_refresh`).
   */
  static async create({
    url, token, keySets, keyRefresh = 5000, fetch, onError = (err) => console.error(err),
  }) {
    const client = new SignetClient({ url, token, fetch });
    const keys = await Promise.all(
      keySets.map(async (set) => new SignetSigningKey(client, set, await client.signingKeys(set))),
    );
    return new SignetKeystore(keys, { keyRefresh, onError });
  }

  /** The key objects, for oidc-provider's `jwks: { keys }`. */
  get keys() {
    return [...this.#keys];
  }

  /** oidc-provider's `jwks` configuration. */
  jwks() {
    return { keys: this.keys };
  }

  /** Every published key of every key set (the AS's `/jwks` document). */
  publishedJwks() {
    const seen = new Set();
    return {
      keys: this.#keys.flatMap((k) => k.publishedJwks()).filter((jwk) => {
        if (seen.has(jwk.kid)) return false;
        seen.add(jwk.kid);
        return true;
      }),
    };
  }

  /** Re-reads every key set's schedule; one failing key set does not stop the others. */
  async refresh() {
    const results = await Promise.allSettled(this.#keys.map((k) => k.refresh()));
    const failed = results.filter((r) => r.status === 'rejected');
    for (const f of failed) this.#onError(f.reason);
    if (failed.length) throw failed[0].reason;
  }

  /**
   * Koa middleware for `provider.use(...)`: answers the provider's JWKS route (`path`, default
   * `/jwks`) with the published keys of Signet's schedule instead of oidc-provider's start-up copy.
   */
  jwksMiddleware(path = '/jwks') {
    return async (ctx, next) => {
      if (ctx.method === 'GET' && ctx.path === path) {
        ctx.body = this.publishedJwks();
        ctx.type = 'application/jwk-set+json; charset=utf-8';
        return;
      }
      await next();
    };
  }

  stop() {
    clearInterval(this.#interval);
    for (const k of this.#keys) k.stop();
  }
}
