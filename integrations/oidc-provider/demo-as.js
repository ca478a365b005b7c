// A FAPI 2.0 authorization server (oidc-provider 9.13.3) whose every JWS is signed by Signet.
//
//   SIGNET_URL    Signet's base URL (default http://127.0.0.1:8080, `scripts/run`)
//   SIGNET_TOKEN  a signer's bearer token (default the dev token `dev-signer-token`)
//   SIGNET_KEY_SETS  comma-separated key sets, one per algorithm (default oidc-ps256,oidc-es256)
//   KEY_REFRESH   ms between reads of Signet's key schedule (default 5000)
//   PORT          default 3000; the issuer is http://127.0.0.1:PORT
//
// Development interactions accept any login and then a consent. One client, `demo-fapi-client`:
// private_key_jwt (demo-client.jwk.json, demo only), redirect http://127.0.0.1:3001/cb,
// DPoP-bound access tokens, ID tokens PS256, JARM and introspection responses ES256, allowed to
// introspect its own tokens. Plain HTTP on loopback: oidc-provider's FAPI 2.0 profile accepts it.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

import { SignetKeystore } from './signet-keystore.js';

const env = process.env;
const port = Number(env.PORT ?? 3000);
const issuer = env.ISSUER ?? `http://127.0.0.1:${port}`;

/** The public half of the demo client's key (the private JWK is the client's, demo only). */
function demoClientJwks() {
  const url = new URL('./demo-client.jwk.json', import.meta.url);
  const { kty, crv, x, y, kid, alg, use } = JSON.parse(readFileSync(url, 'utf8'));
  return { keys: [{ kty, crv, x, y, kid, alg, use }] };
}

export function configuration(keystore) {
  const algs = ['PS256', 'ES256'];
  return {
    jwks: keystore.jwks(),
    clients: [{
      client_id: 'demo-fapi-client',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: demoClientJwks(),
      redirect_uris: ['http://127.0.0.1:3001/cb'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      dpop_bound_access_tokens: true,
      id_token_signed_response_alg: 'PS256',
      authorization_signed_response_alg: 'ES256',
      introspection_signed_response_alg: 'ES256',
    }],
    clientDefaults: {
      id_token_signed_response_alg: 'PS256',
      authorization_signed_response_alg: 'ES256',
      introspection_signed_response_alg: 'ES256',
    },
    responseTypes: ['code'],
    clientAuthMethods: ['private_key_jwt'],
    enabledJWA: {
      idTokenSigningAlgValues: algs,
      authorizationSigningAlgValues: algs,
      introspectionSigningAlgValues: algs,
      userinfoSigningAlgValues: algs,
      clientAuthSigningAlgValues: ['ES256', 'PS256', 'EdDSA'],
      dPoPSigningAlgValues: ['ES256', 'PS256', 'EdDSA'],
      requestObjectSigningAlgValues: ['ES256', 'PS256', 'EdDSA'],
    },
    features: {
      externalSigningSupport: { enabled: true, ack: 'experimental-01' },
      fapi: { enabled: true, profile: '2.0' },
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: true },
      dPoP: { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true },
      jwtResponseModes: { enabled: true },
      introspection: {
        enabled: true,
        allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId,
      },
      jwtIntrospection: { enabled: true },
      devInteractions: { enabled: true },
    },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    pkce: { required: () => true },
  };
}

export async function start() {
  const keystore = await SignetKeystore.create({
    url: env.SIGNET_URL ?? 'http://127.0.0.1:8080',
    token: env.SIGNET_TOKEN ?? 'dev-signer-token',
    keySets: (env.SIGNET_KEY_SETS ?? 'oidc-ps256,oidc-es256').split(',').map((s) => s.trim()),
    keyRefresh: Number(env.KEY_REFRESH ?? 5000),
  });
  const provider = new Provider(issuer, configuration(keystore));
  provider.use(keystore.jwksMiddleware());
  // Reasons appear only in these events: log them.
  for (const event of ['server_error', 'authorization.error', 'grant.error', 'pushed_authorization_request.error',
    'introspection.error', 'jwks.error', 'end_session.error', 'backchannel.error']) {
    provider.on(event, (ctx, err) => {
      // A DPoP nonce challenge is the protocol's normal first answer, not a failure.
      if (err?.error === 'use_dpop_nonce') return;
      console.error(`${event}: ${err?.message ?? err} ${err?.error_detail ?? ''}`);
    });
  }
  const server = provider.listen(port, '127.0.0.1');
  await new Promise((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const kids = keystore.keys.map((k) => `${k.keySet}: ${k.alg} ${k.kid}`).join('; ');
  console.log(`demo AS listening on ${issuer} (Signet ${env.SIGNET_URL ?? 'http://127.0.0.1:8080'}; ${kids})`);
  const stop = () => {
    keystore.stop();
    server.close();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return { provider, server, keystore, stop };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  start().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
