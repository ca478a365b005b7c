// Runs FAPI 2.0 flows against the demo AS (fapi-flow.js) and prints one JSON line per flow:
// {"flow": n, "ok": true, "kids": {"jarm": {kid, alg}, "id_token": ..., "introspection": ...}}
// or {"flow": n, "ok": false, "error": "..."}; then {"done": true, "ok": n, "failed": n}.
//
//   ISSUER       the demo AS (default http://127.0.0.1:3000)
//   SIGNET_URL   Signet (default http://127.0.0.1:8080); its JWKS is /.well-known/jwks.json
//   FLOWS        how many flows (default 1); CONCURRENCY flows at once (default 1)
// Exit status 0 when every flow passed.

import { discover, runFlow, verifyAll } from './fapi-flow.js';

const issuer = process.env.ISSUER ?? 'http://127.0.0.1:3000';
const signet = (process.env.SIGNET_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
const flows = Number(process.env.FLOWS ?? 1);
const concurrency = Number(process.env.CONCURRENCY ?? 1);

const rp = await discover(issuer);
let next = 0;
let ok = 0;
let failed = 0;

async function worker() {
  while (next < flows) {
    const n = ++next;
    try {
      const { jwts, sub, jkt } = await runFlow(rp);
      const kids = await verifyAll(jwts, [`${issuer}/jwks`, `${signet}/.well-known/jwks.json`], issuer);
      ok++;
      console.log(JSON.stringify({ flow: n, ok: true, sub, jkt, kids, jwts }));
    } catch (err) {
      failed++;
      console.log(JSON.stringify({ flow: n, ok: false, error: String(err?.stack ?? err) }));
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
console.log(JSON.stringify({ done: true, ok, failed }));
process.exitCode = failed === 0 ? 0 : 1;
