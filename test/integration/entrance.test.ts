// Who may talk to Signet, against a real Vault: caller authentication (bearer tokens from a file, rotated by
// editing the file, per-key caller policy), listening beyond loopback only with it, the Host check against DNS
// rebinding, JSON-only POSTs against browser "simple" requests, and the unix socket with its mode and group.

import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { buildConfig } from '../../src/config.ts';
import { ConfigError } from '../../src/errors.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { serve } from '../../src/server.ts';
import { headOnlyRequest, portOf, rawRequest } from '../harness/http.ts';
import { eventually, startSignet, type TestSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const TOKEN_A = 'caller-A-Zq8v1YkT3mNw5pRs';
const TOKEN_A2 = 'caller-A2-Hh4bLx9cVd2fGj7k';
const TOKEN_PAY = 'caller-PAY-u7Ee0oPq1Ww2Rr3T';
const TOKEN_ANON = 'caller-ANON-Mm5nB6vC7xZ8aS9d';
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function writeAtomically(file: string, text: string): void {
  writeFileSync(`${file}.new`, text, { mode: 0o600 });
  renameSync(`${file}.new`, file);
}

function captureLogs(): { logs: string[]; sink: Writable } {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { logs, sink };
}

describe('caller authentication', () => {
  let vault: TestVault;
  let signet: TestSignet;
  let tokensFile: string;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
    await vault.createKey('payments', 'ed25519');
    tokensFile = join(mkdtempSync(join(tmpdir(), 'signet-callers-')), 'callers');
    writeAtomically(tokensFile, `# name:token\nsvc-a:${TOKEN_A}\nsvc-pay:${TOKEN_PAY}\n${TOKEN_ANON}\n`);
    signet = await startSignet(vault, [{ name: 'app' }, { name: 'payments', callers: ['svc-pay'] }], {
      config: { callers: { tokens_file: tokensFile } },
    });
    await signet.ready(10_000);
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  const protectedRoutes: Array<[string, string, object?]> = [
    ['POST', '/v1/sign', { claims: {} }],
    ['POST', '/v1/sign/app', { claims: {} }],
    ['POST', '/v1/verify', { token: 'a.b.c' }],
    ['GET', '/v1/keys'],
    ['GET', '/v1/no-such-route'],
  ];

  for (const [method, path, body] of protectedRoutes) {
    test(`${method} ${path} without a token: 401, WWW-Authenticate: Bearer, nothing done`, async () => {
      const response = await rawRequest({ port: portOf(signet.url), method, path, body });
      assert.equal(response.status, 401, response.text);
      assert.deepEqual(response.body, { errors: ['caller authentication required: send Authorization: Bearer <token> or X-Vault-Token: <token> (callers.tokens_file)'] });
      assert.equal(response.headers['www-authenticate'], 'Bearer realm="signet"');
    });

    test(`${method} ${path} with a wrong token: 401 invalid_token`, async () => {
      for (const authorization of [`Bearer ${TOKEN_A}x`, `Bearer ${TOKEN_A.slice(0, -1)}`, `Basic ${TOKEN_A}`, TOKEN_A]) {
        const response = await rawRequest({ port: portOf(signet.url), method, path, body, headers: { authorization } });
        assert.equal(response.status, 401, `${authorization}: ${response.text}`);
        assert.deepEqual(response.body, { errors: ['caller token not accepted (callers.tokens_file)'] });
        assert.equal(response.headers['www-authenticate'], 'Bearer realm="signet", error="invalid_token"');
      }
    });
  }

  test('with a right token: sign, verify and keys answer', async () => {
    const signed = await signet.post('/v1/sign/app', { claims: { sub: 'u1' } }, bearer(TOKEN_A));
    assert.equal(signed.status, 200, JSON.stringify(signed.body));
    const verified = await signet.post('/v1/verify', { token: signed.body.token }, bearer(TOKEN_ANON));
    assert.equal(verified.status, 200, JSON.stringify(verified.body));
    assert.equal((await signet.get('/v1/keys', bearer(TOKEN_PAY))).status, 200);
    assert.equal((await signet.post('/v1/sign', { claims: {} }, bearer(TOKEN_ANON))).status, 200, 'the default key has no caller list');
  });

  test('public routes need no token: health, readiness, metrics, JWKS, discovery', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/.well-known/jwks.json', '/v1/jwks', '/.well-known/openid-configuration']) {
      const response = await signet.get(path);
      assert.equal(response.status, 200, `${path}: ${response.text}`);
    }
  });

  test('the token is checked before the body is read: an unauthenticated 1 MiB body gets 401, not 413', async () => {
    // Only the request's head is sent; the answer must come while the body is still owed. A server that read (or
    // length-checked) the body first would answer 413 to the 1 MiB one and wait for the 100-byte one (timeout).
    const required = { errors: ['caller authentication required: send Authorization: Bearer <token> or X-Vault-Token: <token> (callers.tokens_file)'] };
    for (const length of [1 << 20, 100]) {
      const response = await headOnlyRequest({ port: portOf(signet.url), path: '/v1/sign', headers: { 'content-type': 'application/json', 'content-length': String(length) } });
      assert.equal(response.status, 401, `${length} bytes announced: ${response.text}`);
      assert.deepEqual(response.body, required);
      assert.equal(response.headers['www-authenticate'], 'Bearer realm="signet"');
    }
    // With a right token the same 1 MiB head is refused for its size (so the 401 above was the token check).
    const tooLarge = await headOnlyRequest({ port: portOf(signet.url), path: '/v1/sign', headers: { 'content-type': 'application/json', 'content-length': String(1 << 20), ...bearer(TOKEN_A) } });
    assert.equal(tooLarge.status, 413, tooLarge.text);
  });

  test('per-key caller policy: only the callers a key lists may sign with it (403 naming the rule)', async () => {
    const allowed = await signet.post('/v1/sign/payments', { claims: {} }, bearer(TOKEN_PAY));
    assert.equal(allowed.status, 200, JSON.stringify(allowed.body));
    const other = await signet.post('/v1/sign/payments', { claims: {} }, bearer(TOKEN_A));
    assert.equal(other.status, 403);
    assert.deepEqual(other.body, { errors: ['caller "svc-a" may not sign with key "payments" (keys[].callers)'] });
    const unnamed = await signet.post('/v1/sign/payments', { claims: {} }, bearer(TOKEN_ANON));
    assert.equal(unnamed.status, 403);
    assert.deepEqual(unnamed.body, { errors: ['a caller without a name may not sign with key "payments" (keys[].callers)'] });
    // The listed caller may still sign with keys that have no list.
    assert.equal((await signet.post('/v1/sign/app', { claims: {} }, bearer(TOKEN_PAY))).status, 200);
    const metrics = (await signet.get('/metrics')).text;
    assert.match(metrics, /^signet_sign_requests_total\{key="payments",outcome="refused"\} 2$/m);
    assert.match(metrics, /^signet_http_refusals_total\{reason="caller_missing"\} [1-9]/m);
    assert.match(metrics, /^signet_http_refusals_total\{reason="caller_invalid"\} [1-9]/m);
  });

  test('tokens rotate by editing the file: a new token works and a removed one is refused, without a restart', async () => {
    writeAtomically(tokensFile, `svc-a:${TOKEN_A2}\nsvc-pay:${TOKEN_PAY}\n${TOKEN_ANON}\n`);
    await eventually(async () => (await signet.post('/v1/sign/app', { claims: {} }, bearer(TOKEN_A2))).status === 200, 5000, 'the new token accepted');
    assert.equal((await signet.post('/v1/sign/app', { claims: {} }, bearer(TOKEN_A))).status, 401, 'the removed token is refused');
    // Overlap during a rotation: two tokens under one name.
    writeAtomically(tokensFile, `svc-a:${TOKEN_A2}\nsvc-a:${TOKEN_A}\nsvc-pay:${TOKEN_PAY}\n${TOKEN_ANON}\n`);
    await eventually(async () => (await signet.post('/v1/sign/app', { claims: {} }, bearer(TOKEN_A))).status === 200, 5000, 'both tokens accepted');
    assert.equal((await signet.post('/v1/sign/app', { claims: {} }, bearer(TOKEN_A2))).status, 200);
  });

  test('a tokens file that becomes unusable fails closed (503 for every caller) and recovers when fixed', async () => {
    writeAtomically(tokensFile, 'svc-a:too-short\n');
    await eventually(async () => (await signet.post('/v1/sign/app', { claims: {} }, bearer(TOKEN_PAY))).status === 503, 5000, 'fail closed');
    const refused = await signet.post('/v1/sign/app', { claims: {} }, bearer(TOKEN_A));
    assert.deepEqual(refused.body, { errors: ["caller tokens are unavailable: callers.tokens_file is not usable; see Signet's log"] });
    assert.ok(signet.logs.some((l) => /"event":"tokens_file_invalid".*line 1: the token is shorter than 16 characters/.test(l)));
    assert.equal((await signet.get('/healthz')).status, 200, 'public routes keep answering');
    writeAtomically(tokensFile, `svc-a:${TOKEN_A}\nsvc-pay:${TOKEN_PAY}\n${TOKEN_ANON}\n`);
    await eventually(async () => (await signet.post('/v1/sign/app', { claims: {} }, bearer(TOKEN_A))).status === 200, 5000, 'recovered');
  });

  test('the logs name callers, never their tokens', async () => {
    const text = signet.logs.join('\n');
    for (const token of [TOKEN_A, TOKEN_A2, TOKEN_PAY, TOKEN_ANON]) assert.ok(!text.includes(token), 'a caller token reached the logs');
    assert.ok(signet.logs.some((l) => /"caller":"svc-pay"/.test(l)), 'request lines carry the caller name');
  });

  test('start-up is refused when the tokens file is missing or holds no token', async () => {
    await assert.rejects(startSignet(vault, [{ name: 'app' }], { config: { callers: { tokens_file: '/nonexistent/callers' } } }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.message, 'configuration: callers.tokens_file: cannot read /nonexistent/callers (ENOENT)');
      return true;
    });
    const empty = join(mkdtempSync(join(tmpdir(), 'signet-callers-')), 'callers');
    writeFileSync(empty, '# nobody yet\n');
    await assert.rejects(startSignet(vault, [{ name: 'app' }], { config: { callers: { tokens_file: empty } } }), /callers\.tokens_file: holds no token/);
  });
});

describe('listening beyond loopback needs caller authentication', () => {
  let vault: TestVault;
  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
  });
  after(async () => vault?.stop());

  test('0.0.0.0 is refused without callers, accepted with them; requests still need a token and an allowed Host', async () => {
    const doc = { listen: '0.0.0.0:0', vault: { address: vault.address }, keys: [{ name: 'app', issuer: 'https://issuer.test' }], log_level: 'warn' };
    assert.throws(() => buildConfig(doc, { VAULT_TOKEN: vault.rootToken }), /listen: 0\.0\.0\.0:0 is not a loopback address.*callers\.tokens_file/);

    const tokensFile = join(mkdtempSync(join(tmpdir(), 'signet-callers-')), 'callers');
    writeAtomically(tokensFile, `svc-a:${TOKEN_A}\n`);
    const config = buildConfig({ ...doc, callers: { tokens_file: tokensFile }, allowed_hosts: ['signet.internal'] }, { VAULT_TOKEN: vault.rootToken });
    const { logs, sink } = captureLogs();
    const server = await serve(config, { logger: createLogger('warn', sink) });
    try {
      const address = server.app.server.address() as { address: string; port: number };
      assert.equal(address.address, '0.0.0.0');
      await eventually(async () => (await rawRequest({ port: address.port, path: '/readyz', headers: { host: 'signet.internal:8250' } })).status === 200, 10_000, 'readiness');
      const ok = await rawRequest({ port: address.port, path: '/v1/sign/app', body: { claims: {} }, headers: { host: 'signet.internal:8250', ...bearer(TOKEN_A) } });
      assert.equal(ok.status, 200, ok.text);
      const noToken = await rawRequest({ port: address.port, path: '/v1/sign/app', body: { claims: {} }, headers: { host: 'signet.internal' } });
      assert.equal(noToken.status, 401);
      const otherHost = await rawRequest({ port: address.port, path: '/v1/sign/app', body: { claims: {} }, headers: { host: 'attacker.example', ...bearer(TOKEN_A) } });
      assert.equal(otherHost.status, 403);
      assert.ok(!logs.join('\n').includes(TOKEN_A));
    } finally {
      await server.close();
    }
  });
});

describe('Host header: DNS-rebinding defence', () => {
  let vault: TestVault;
  let signet: TestSignet;
  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
    signet = await startSignet(vault, [{ name: 'app' }], { config: { allowed_hosts: ['signet.internal'] } });
    await signet.ready(10_000);
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  const MESSAGE = 'Host header is not a loopback address (127.0.0.1, localhost, [::1]) or one of allowed_hosts (DNS-rebinding defence)';

  for (const host of ['attacker.example', 'attacker.example:8250', '127.0.0.1.nip.io', 'localhost.attacker.example', '10.0.0.1:8250', '0.0.0.0']) {
    test(`Host: ${host} is refused with 403, on every route, before anything else`, async () => {
      const port = portOf(signet.url);
      const sign = await rawRequest({ port, path: '/v1/sign/app', body: { claims: { sub: 'rebound' } }, headers: { host } });
      assert.equal(sign.status, 403, sign.text);
      assert.deepEqual(sign.body, { errors: [MESSAGE] });
      assert.ok(!sign.text.includes('token'));
      const verify = await rawRequest({ port, path: '/v1/verify', body: { token: 'a.b.c' }, headers: { host } });
      assert.deepEqual([verify.status, verify.body], [403, { errors: [MESSAGE] }]);
      for (const path of ['/v1/keys', '/healthz', '/.well-known/jwks.json', '/metrics']) {
        assert.equal((await rawRequest({ port, path, headers: { host } })).status, 403, path);
      }
      // Refused before the body is parsed: broken JSON gets the Host answer, not a 400.
      assert.equal((await rawRequest({ port, path: '/v1/sign/app', body: '{"claims":', headers: { host } })).status, 403);
    });
  }

  for (const host of ['127.0.0.1', '127.0.0.1:PORT', '127.1.2.3:PORT', 'localhost:PORT', 'LocalHost', '[::1]:PORT', 'signet.internal', 'SIGNET.internal:8250']) {
    test(`Host: ${host} is answered`, async () => {
      const port = portOf(signet.url);
      const response = await rawRequest({ port, path: '/v1/sign/app', body: { claims: {} }, headers: { host: host.replace('PORT', String(port)) } });
      assert.equal(response.status, 200, response.text);
    });
  }

  test('refusals are counted', async () => {
    assert.match((await signet.get('/metrics')).text, /^signet_http_refusals_total\{reason="host"\} [1-9]/m);
  });

  // A page can send these cross-origin without a CORS preflight (the "simple" content types).
  for (const type of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx', 'application/json-seq', 'text/json']) {
    test(`POST with Content-Type ${type}: 415 on sign and verify`, async () => {
      const port = portOf(signet.url);
      for (const [path, body] of [['/v1/sign/app', '{"claims":{}}'], ['/v1/verify', '{"token":"a.b.c"}']] as const) {
        const response = await rawRequest({ port, path, body, headers: { 'content-type': type } });
        assert.equal(response.status, 415, `${path}: ${response.text}`);
        assert.deepEqual(response.body, { errors: ['Content-Type must be application/json'] });
      }
    });
  }

  test('POST with an empty Content-Type: 415', async () => {
    const port = portOf(signet.url);
    const response = await rawRequest({ port, path: '/v1/sign/app', body: '{"claims":{}}', headers: { 'content-type': '' } });
    assert.equal(response.status, 415, response.text);
    assert.deepEqual(response.body, { errors: ['Content-Type must be application/json'] });
  });

  test('application/json with parameters is JSON', async () => {
    const port = portOf(signet.url);
    const response = await rawRequest({ port, path: '/v1/sign/app', body: '{"claims":{}}', headers: { 'content-type': 'application/json; charset=utf-8' } });
    assert.equal(response.status, 200, response.text);
  });
});

describe('unix socket', () => {
  let vault: TestVault;
  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
  });
  after(async () => vault?.stop());

  async function serveOn(extra: Record<string, unknown>) {
    const dir = mkdtempSync(join(tmpdir(), 'signet-sock-'));
    const socketPath = join(dir, 'signet.sock');
    const config = buildConfig({
      listen: `unix:${socketPath}`, vault: { address: vault.address }, keys: [{ name: 'app', issuer: 'https://issuer.test' }], log_level: 'warn', ...extra,
    }, { VAULT_TOKEN: vault.rootToken });
    const server = await serve(config, { logger: createLogger('warn', captureLogs().sink) });
    return { server, socketPath };
  }

  test('listens with mode 0660 by default, and signs through the socket', async () => {
    const { server, socketPath } = await serveOn({});
    try {
      const stat = statSync(socketPath);
      assert.ok(stat.isSocket());
      assert.equal(stat.mode & 0o777, 0o660);
      await eventually(async () => (await rawRequest({ socketPath, path: '/readyz' })).status === 200, 10_000, 'readiness');
      const signed = await rawRequest({ socketPath, path: '/v1/sign/app', body: { claims: { sub: 'over-the-socket' } } });
      assert.equal(signed.status, 200, signed.text);
      const jwks = await rawRequest({ socketPath, path: '/.well-known/jwks.json' });
      const { payload } = await jwtVerify(signed.body.token, createLocalJWKSet(jwks.body), { algorithms: ['ES256'] });
      assert.equal(payload.sub, 'over-the-socket');
    } finally {
      await server.close();
    }
  });

  test('listen_mode and listen_group set the socket\'s mode and group', async () => {
    // root may hand the socket to any group; another user only to a group it belongs to (its own).
    const gid = process.getuid?.() === 0 ? 4242 : process.getgid!();
    const { server, socketPath } = await serveOn({ listen_mode: '0600', listen_group: String(gid) });
    try {
      const stat = statSync(socketPath);
      assert.equal(stat.mode & 0o777, 0o600);
      assert.equal(stat.gid, gid);
      const answer = await rawRequest({ socketPath, path: '/healthz' });
      assert.equal(answer.status, 200);
    } finally {
      await server.close();
    }
  });

  test('a group that does not exist stops start-up, naming listen_group', async () => {
    await assert.rejects(serveOn({ listen_group: 'no-such-group-signet' }), /configuration: listen_group: no group named "no-such-group-signet"/);
  });
});
