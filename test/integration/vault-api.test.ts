// The Vault-compatible endpoint and batch signing (issue 14), against a running Signet in front of a real Vault,
// driven by Vault clients nobody here wrote: the vault CLI (the same binary as the test Vault) and Python's hvac
// (pinned, in its own venv under the shared cache). Every token they get back verifies with the JWKS they read.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { runHvac } from '../harness/hvac.ts';
import { run, type RunResult } from '../harness/ops.ts';
import { eventually, startSignet, type TestSignet } from '../harness/signet.ts';
import { startVault, vaultBinary, type TestVault } from '../harness/vault.ts';

const CALLER = 'svc-minter-Qw3Er5Ty7Ui9Op1A';
const OTHER = 'svc-other-Zx2Cv4Bn6Mm8Ll0K';

async function verifyAll(tokens: string[], jwks: JSONWebKeySet, issuer = 'https://issuer.test'): Promise<void> {
  const keySet = createLocalJWKSet(jwks);
  for (const token of tokens) await jwtVerify(token, keySet, { issuer, algorithms: ['ES256', 'EdDSA'] });
}

/** The vault CLI against Signet, with nothing of this process's Vault settings (no ~/.vault-token either); its own retries of a 5xx (a 503 while the loaded machine lags) stay on, as for any user. */
async function vaultCli(signet: TestSignet, args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const home = mkdtempSync(join(tmpdir(), 'signet-vaultcli-'));
  return run(await vaultBinary(), args, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, VAULT_ADDR: signet.url, ...env },
    timeoutMs: 30_000,
  });
}

function requestFile(body: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), 'signet-req-')), 'req.json');
  writeFileSync(file, JSON.stringify(body));
  return file;
}

const PY_PRELUDE = `
import hvac, json, os, sys
client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ.get("VAULT_TOKEN"))
out = {}
def refused(fn):
    try:
        fn()
        return None
    except hvac.exceptions.VaultError as e:
        return {"type": type(e).__name__, "errors": e.errors}
`;

async function hvacJson(script: string, env: Record<string, string>): Promise<any> {
  const result = await runHvac(`${PY_PRELUDE}\n${script}\nprint(json.dumps(out))`, env);
  assert.equal(result.code, 0, `python:\n${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!);
}

describe('Vault-compatible endpoint', () => {
  let vault: TestVault;
  let signet: TestSignet;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
    await vault.createKey('users', 'ed25519');
    signet = await startSignet(vault, [
      { name: 'app', audiences: ['api'], max_ttl: '1h', allowed_typ: ['JWT', 'at+jwt'] },
      { name: 'users', subject_pattern: 'user-[0-9]+' },
    ], { config: { sign_batch: { max_items: 8 } } });
    await signet.ready(10_000);
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  test('vault CLI: write -field=token jwt/sign/app @req.json, read jwt/jwks; the token verifies with that JWKS', async () => {
    const firstLine = signet.logs.length;
    const file = requestFile({ claims: { sub: 'svc-1', aud: 'api', scope: 'read' }, ttl: '10m' });
    const signed = await vaultCli(signet, ['write', '-field=token', 'jwt/sign/app', `@${file}`]);
    assert.equal(signed.code, 0, signed.stderr);
    const token = signed.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);

    const read = await vaultCli(signet, ['read', '-format=json', 'jwt/jwks']);
    assert.equal(read.code, 0, read.stderr);
    const jwks = JSON.parse(read.stdout).data as JSONWebKeySet;
    await verifyAll([token], jwks);
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { issuer: 'https://issuer.test', audience: 'api' });
    assert.equal(payload.sub, 'svc-1');
    assert.equal(payload.exp! - payload.iat!, 600);

    // The table `vault read` prints by default, and the whole envelope as JSON.
    const table = await vaultCli(signet, ['read', 'jwt/jwks']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^keys\s+\[map\[/m);
    const whole = await vaultCli(signet, ['write', '-format=json', 'jwt/sign/app', `@${file}`]);
    const envelope = JSON.parse(whole.stdout);
    assert.equal(envelope.lease_duration, 0);
    assert.equal(envelope.renewable, false);
    assert.deepEqual(Object.keys(envelope.data).sort(), ['alg', 'expires_at', 'key', 'key_version', 'kid', 'token']);
    assert.equal(envelope.data.kid, decodeProtectedHeader(envelope.data.token).kid);
    assert.ok(jwks.keys.some((k) => k.kid === envelope.data.kid));

    // Key names and public keys, as `vault list` / `vault read` show them.
    const listed = await vaultCli(signet, ['list', '-format=json', 'jwt/keys']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(JSON.parse(listed.stdout), ['app', 'users']);
    const key = await vaultCli(signet, ['read', '-format=json', 'jwt/keys/app']);
    assert.equal(key.code, 0, key.stderr);
    const data = JSON.parse(key.stdout).data;
    assert.equal(data.signing_kid, envelope.data.kid);
    assert.match(data.keys['1'].public_key, /^-----BEGIN PUBLIC KEY-----/);

    // What the CLI sent, from Signet's request lines: only these routes, no mount preflight
    // (sys/internal/ui/mounts/…), nothing refused.
    const sent = new Set(signet.logs.slice(firstLine).map((l) => JSON.parse(l) as { msg: string; method?: string; url?: string; status?: number })
      // (A 503 shed by the event-loop guard on a loaded machine, which the CLI retries, is left out.)
      .filter((l) => l.msg === 'request' && l.url !== '/readyz' && l.status !== 503).map((l) => `${l.method} ${l.url} ${l.status}`));
    assert.deepEqual([...sent].sort(), ['GET /v1/jwt/jwks 200', 'GET /v1/jwt/keys 200', 'GET /v1/jwt/keys/:key 200', 'PUT /v1/jwt/sign/:key 200']);
  });

  test('vault CLI: refusals come back as Vault errors with Signet\'s statuses', async () => {
    const policy = await vaultCli(signet, ['write', 'jwt/sign/app', `@${requestFile({ claims: { aud: 'billing' } })}`]);
    assert.equal(policy.code, 2);
    assert.match(policy.stderr, /Code: 403/);
    assert.match(policy.stderr, /claim aud: a value is not in this key's audience allow-list/);
    const unknown = await vaultCli(signet, ['write', 'jwt/sign/nope', `@${requestFile({ claims: {} })}`]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /Code: 404/);
    assert.match(unknown.stderr, /unknown key "nope"/);
    const malformed = await vaultCli(signet, ['write', 'jwt/sign/app', 'claims=sub']);
    assert.equal(malformed.code, 2);
    assert.match(malformed.stderr, /Code: 400/);
    assert.match(malformed.stderr, /body\.claims: must be object/);
  });

  test('the Vault shape over HTTP: envelope, errors, and POST still needs application/json', async () => {
    // Without caller authentication an X-Vault-Token (here a made-up one) is ignored, not refused.
    const ok = await signet.post('/v1/jwt/sign/app', { claims: { aud: 'api' } }, { 'x-vault-token': 'hvs.not-a-caller-token' });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('content-type'), 'application/json', 'exactly what Vault sends');
    assert.ok(!signet.logs.some((l) => l.includes('hvs.not-a-caller-token')));
    assert.deepEqual(Object.keys(ok.body).sort(), ['auth', 'data', 'lease_duration', 'lease_id', 'renewable', 'request_id', 'warnings', 'wrap_info']);
    assert.equal(ok.body.request_id, ok.headers.get('x-request-id'));
    const refused = await signet.post('/v1/jwt/sign/users', { claims: { sub: 'admin' } });
    assert.equal(refused.status, 403);
    assert.deepEqual(refused.body, { errors: ["claim sub: does not match this key's subject_pattern (keys[].subject_pattern)"] });
    const simple = await fetch(`${signet.url}/v1/jwt/sign/app`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"claims":{}}' });
    assert.equal(simple.status, 415);
    const noType = await fetch(`${signet.url}/v1/jwt/sign/app`, { method: 'POST', body: new Blob(['{"claims":{}}']) });
    assert.equal(noType.status, 415, 'a POST without Content-Type is what a page can send cross-origin without a preflight');
  });

  test('hvac: write_data/write sign, read the JWKS and the key, list keys; errors raise hvac\'s exceptions', async () => {
    const out = await hvacJson(`
r = client.write_data("jwt/sign/app", data={"claims": {"sub": "py-1", "aud": "api"}, "ttl": 120})
out["token"] = r["data"]["token"]; out["kid"] = r["data"]["kid"]; out["version"] = r["data"]["key_version"]
out["write"] = client.write("jwt/sign/users", claims={"sub": "user-42"})["data"]["token"]
b = client.write_data("jwt/sign/users", data={"batch_input": [{"claims": {"sub": "user-1"}}, {"claims": {"sub": "root"}}, {"claims": {"sub": "user-2"}, "reference": "r2"}]})
out["batch"] = b["data"]["batch_results"]
out["jwks"] = client.read("jwt/jwks")["data"]
out["key"] = client.read("jwt/keys/users")["data"]
out["list"] = client.list("jwt/keys")["data"]["keys"]
out["forbidden"] = refused(lambda: client.write_data("jwt/sign/app", data={"claims": {"aud": "billing"}}))
out["unknown"] = refused(lambda: client.write_data("jwt/sign/nope", data={"claims": {}}))
out["missing"] = client.read("jwt/keys/nope")
`, { VAULT_ADDR: signet.url });
    await verifyAll([out.token, out.write, out.batch[0].token, out.batch[2].token], out.jwks);
    assert.equal(out.version, 1);
    assert.ok(out.jwks.keys.some((k: { kid: string }) => k.kid === out.kid));
    assert.equal(out.batch[1].status, 403);
    assert.match(out.batch[1].error, /claim sub: does not match/);
    assert.equal(out.batch[2].reference, 'r2');
    assert.equal(out.key.name, 'users');
    assert.deepEqual(out.list, ['app', 'users']);
    assert.deepEqual(out.forbidden, { type: 'Forbidden', errors: ["claim aud: a value is not in this key's audience allow-list (keys[].audiences)"] });
    assert.equal(out.unknown.type, 'InvalidPath');
    assert.equal(out.missing, null, 'hvac reads a 404 as "nothing there"');
  });

  test('batch_input on both APIs: per-item results in order, one key version; over the bound 413', async () => {
    const batch = [
      { claims: { aud: 'api', n: 1 } },
      { claims: { aud: 'billing' } },
      { claims: { aud: 'api' }, ttl: 'soon' },
      { claims: { aud: 'api', n: 4 }, ttl: 60, headers: { typ: 'at+jwt' } },
      { claims: { aud: 'api', exp: 1 } },
    ];
    for (const path of ['/v1/sign/app', '/v1/jwt/sign/app']) {
      const response = await signet.post(path, { batch_input: batch, ttl: '5m' });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      const results = (path.startsWith('/v1/jwt') ? response.body.data : response.body).batch_results;
      assert.equal(results.length, 5, JSON.stringify(results));
      assert.equal(results[1].status, 403);
      assert.match(results[1].error, /^claim aud: a value is not in this key's audience allow-list/);
      assert.equal(results[2].status, 400);
      assert.equal(results[2].error, 'ttl: must be a duration such as "15m" or a number of seconds');
      assert.equal(results[4].status, 403);
      assert.match(results[4].error, /^claim exp: set by Signet/);
      const tokens = [results[0], results[3]];
      assert.ok(tokens.every((r) => typeof r.token === 'string' && r.error === undefined), JSON.stringify(tokens.map((r) => r.error)));
      assert.equal(new Set(tokens.map((r) => `${r.kid}/${r.key_version}`)).size, 1);
      const jwks = (await signet.get('/.well-known/jwks.json')).body as JSONWebKeySet;
      await verifyAll(tokens.map((r) => r.token), jwks);
      const first = await jwtVerify(results[0].token, createLocalJWKSet(jwks));
      assert.equal(first.payload.exp! - first.payload.iat!, 300, 'the top-level ttl is the items\' default');
      assert.equal(first.payload.n, 1);
      const fourth = await jwtVerify(results[3].token, createLocalJWKSet(jwks));
      assert.equal(fourth.payload.exp! - fourth.payload.iat!, 60);
      assert.equal(fourth.protectedHeader.typ, 'at+jwt');
    }

    const nine = Array.from({ length: 9 }, () => ({ claims: { aud: 'api' } }));
    for (const path of ['/v1/sign/app', '/v1/jwt/sign/app']) {
      const over = await signet.post(path, { batch_input: nine });
      assert.equal(over.status, 413);
      assert.deepEqual(over.body, { errors: ['batch_input holds 9 items; at most 8 per request (sign_batch.max_items): split it'] });
    }
    const both = await signet.post('/v1/sign/app', { claims: {}, batch_input: [{ claims: {} }] });
    assert.equal(both.status, 400);
    assert.deepEqual(both.body, { errors: ['body: send either "claims" or "batch_input", not both'] });
    const empty = await signet.post('/v1/sign/app', { batch_input: [] });
    assert.equal(empty.status, 400);
    assert.match(empty.body.errors[0], /^body\.batch_input: must NOT have fewer than 1 items/);

    // Every item was counted with its own outcome.
    const metrics = (await signet.get('/metrics')).text;
    assert.match(metrics, /signet_sign_requests_total\{key="app",outcome="refused"\} [1-9]/);
  });
});

describe('Vault-compatible endpoint with caller authentication (X-Vault-Token)', () => {
  let vault: TestVault;
  let signet: TestSignet;
  let auditLog: string | undefined;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
    await vault.createKey('payments', 'ed25519');
    // Vault's own audit log, raw: if Signet ever passed a caller token on to Vault, it would show here.
    // (OpenBao allows audit devices only in its configuration file: there, the log check below stands alone.)
    const file = join(mkdtempSync(join(tmpdir(), 'signet-audit-')), 'audit.log');
    try {
      await vault.api('PUT', 'sys/audit/file', { type: 'file', options: { file_path: file, log_raw: 'true' } });
      auditLog = file;
    } catch (error) {
      if (!/declarative, config-based audit/.test((error as Error).message)) throw error;
    }
    const tokensFile = join(mkdtempSync(join(tmpdir(), 'signet-callers-')), 'callers');
    writeFileSync(`${tokensFile}.new`, `minter:${CALLER}\nother:${OTHER}\n`, { mode: 0o600 });
    renameSync(`${tokensFile}.new`, tokensFile);
    signet = await startSignet(vault, [{ name: 'app' }, { name: 'payments', callers: ['minter'] }], {
      config: { callers: { tokens_file: tokensFile }, vault_api: { mount: 'secret/jwt' } },
    });
    await signet.ready(10_000);
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  test('VAULT_TOKEN=<caller token> vault write signs; none or a wrong one: 401; keys[].callers applies; JWKS stays public', async () => {
    const file = requestFile({ claims: { sub: 'svc' } });
    const signed = await vaultCli(signet, ['write', '-field=token', 'secret/jwt/sign/payments', `@${file}`], { VAULT_TOKEN: CALLER });
    assert.equal(signed.code, 0, signed.stderr);
    const jwksRead = await vaultCli(signet, ['read', '-format=json', 'secret/jwt/jwks']);
    assert.equal(jwksRead.code, 0, jwksRead.stderr);
    await verifyAll([signed.stdout.trim()], JSON.parse(jwksRead.stdout).data);

    const none = await vaultCli(signet, ['write', 'secret/jwt/sign/app', `@${file}`]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /Code: 401/);
    assert.match(none.stderr, /caller authentication required/);
    const wrong = await vaultCli(signet, ['write', 'secret/jwt/sign/app', `@${file}`], { VAULT_TOKEN: `${CALLER}x` });
    assert.match(wrong.stderr, /Code: 401/);
    assert.match(wrong.stderr, /caller token not accepted \(X-Vault-Token; callers\.tokens_file\)/);
    const policy = await vaultCli(signet, ['write', 'secret/jwt/sign/payments', `@${file}`], { VAULT_TOKEN: OTHER });
    assert.match(policy.stderr, /Code: 403/);
    assert.match(policy.stderr, /caller "other" may not sign with key "payments" \(keys\[\]\.callers\)/);

    const py = await hvacJson(`
out["token"] = client.write_data("secret/jwt/sign/app", data={"claims": {"sub": "py"}})["data"]["token"]
out["keys"] = client.read("secret/jwt/keys/app")["data"]["signing_kid"]
`, { VAULT_ADDR: signet.url, VAULT_TOKEN: OTHER });
    await verifyAll([py.token], JSON.parse(jwksRead.stdout).data);

    // Authorization wins over X-Vault-Token when both are sent (the bearer token is the one checked).
    const both = await signet.post('/v1/secret/jwt/sign/app', { claims: {} }, { authorization: `Bearer ${CALLER}`, 'x-vault-token': 'not-a-caller-token-at-all' });
    assert.equal(both.status, 200);

    // Neither Signet's log nor Vault's audit log ever holds a caller token.
    const audit = auditLog === undefined ? '' : await eventually(() => {
      const text = readFileSync(auditLog!, 'utf8');
      return text.includes('transit/sign/app') && text.includes('transit/sign/payments') ? text : undefined;
    }, 5000, 'audit entries');
    for (const secret of [CALLER, OTHER, `${CALLER}x`]) {
      assert.ok(!audit.includes(secret), 'a caller token reached Vault');
      assert.ok(!signet.logs.some((l) => l.includes(secret)), 'a caller token was logged');
    }
  });
});

describe('batch across a rotation switch', () => {
  let vault: TestVault;
  before(async () => {
    vault = await startVault();
  });
  after(async () => vault?.stop());

  test('Vault refuses the version the batch picked: the whole batch is signed again with the new one', async () => {
    await vault.createKey('switch', 'ecdsa-p256');
    // A long refresh interval: Signet learns of the switch only from Vault's refusal of the old version.
    const signet = await startSignet(vault, [{ name: 'switch', publish_delay: '2h' }], { config: { refresh_interval: '30m' } });
    try {
      await signet.ready(10_000);
      assert.equal((await signet.post('/v1/sign/switch', { claims: {} })).body.key_version, 1);
      await vault.rotate('switch');
      await vault.configKey('switch', { min_encryption_version: 2 });
      const items = Array.from({ length: 64 }, (_, i) => ({ claims: { n: i } }));
      const response = await signet.post('/v1/jwt/sign/switch', { batch_input: items });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      const results = response.body.data.batch_results as Array<{ token: string; kid: string; key_version: number; error?: string }>;
      assert.equal(results.length, 64);
      assert.deepEqual(results.filter((r) => r.error), []);
      assert.deepEqual([...new Set(results.map((r) => r.key_version))], [2]);
      assert.equal(new Set(results.map((r) => r.kid)).size, 1);
      const jwks = (await signet.get('/.well-known/jwks.json')).body as JSONWebKeySet;
      assert.ok(jwks.keys.some((k) => k.kid === results[0]!.kid));
      await verifyAll(results.map((r) => r.token), jwks);
    } finally {
      await signet.close();
    }
  });

  test('batches in flight while an operator switches versions: every batch signed with one version, its kid in the JWKS', async () => {
    await vault.createKey('live', 'ed25519');
    const signet = await startSignet(vault, [{ name: 'live', publish_delay: '1h' }], {
      config: { refresh_interval: '1s', jwks: { max_age: '1s' }, clock_skew: '1s' },
    });
    try {
      await signet.ready(10_000);
      await vault.rotate('live');
      let switched = false;
      const answers: Array<Array<{ token?: string; kid?: string; key_version?: number; error?: string }>> = [];
      const client = async () => {
        // Keep sending until well after the switch has been seen.
        let after = 0;
        while (after < 3) {
          const response = await signet.post('/v1/sign/live', { batch_input: Array.from({ length: 32 }, (_, i) => ({ claims: { i } })) });
          assert.equal(response.status, 200, JSON.stringify(response.body));
          answers.push(response.body.batch_results);
          if (switched && response.body.batch_results[0].key_version === 2) after++;
        }
      };
      const clients = Array.from({ length: 4 }, client);
      // Batches are going out with v1 (four answered) before the operator switches.
      await eventually(() => answers.length >= 4, 10_000, 'four batches signed with v1', 20);
      await vault.cli('write', 'transit/keys/live/config', 'min_encryption_version=2');
      switched = true;
      await Promise.all(clients);
      const jwks = (await signet.get('/.well-known/jwks.json')).body as JSONWebKeySet;
      const kids = new Set(jwks.keys.map((k) => k.kid));
      const versions = new Set<number>();
      for (const results of answers) {
        assert.deepEqual(results.filter((r) => r.error).map((r) => r.error), []);
        const one = new Set(results.map((r) => `${r.kid}/${r.key_version}`));
        assert.equal(one.size, 1, `a batch mixed versions: ${[...one].join(', ')}`);
        assert.ok(kids.has(results[0]!.kid!), 'the batch kid is in the JWKS');
        versions.add(results[0]!.key_version!);
      }
      assert.deepEqual([...versions].sort(), [1, 2], 'batches were signed on both sides of the switch');
      await verifyAll(answers.flat().map((r) => r.token!), jwks);
    } finally {
      await signet.close();
    }
  });
});

describe('batch signing with the audit trail on', () => {
  test('every item of a batch gets its own record (issued or refused), written before the answer', async () => {
    const vault = await startVault();
    const dir = mkdtempSync(join(tmpdir(), 'signet-batch-audit-'));
    const file = join(dir, 'audit.log');
    const subjectKey = join(dir, 'subject.key');
    writeFileSync(subjectKey, 'batch-audit-subject-secret-0123456789\n', { mode: 0o600 });
    try {
      await vault.createKey('app', 'ecdsa-p256');
      const signet = await startSignet(vault, [{ name: 'app', audiences: ['api'] }], { config: { audit: { file, subject_key_file: subjectKey } } });
      try {
        await signet.ready(10_000);
        const response = await signet.post('/v1/jwt/sign/app', { batch_input: [{ claims: { sub: 'a', aud: 'api' } }, { claims: { aud: 'billing' } }, { claims: { sub: 'c', aud: 'api' } }] });
        assert.equal(response.status, 200, JSON.stringify(response.body));
        const results = response.body.data.batch_results;
        // The answer came after the records: they are in the file now.
        const records = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>)
          .filter((r) => r.request_id === response.body.request_id);
        assert.equal(records.length, 3);
        assert.deepEqual(records.map((r) => r.outcome).sort(), ['issued', 'issued', 'refused']);
        const refused = records.find((r) => r.outcome === 'refused')!;
        assert.equal(refused.rule, 'claim_policy');
        assert.equal(refused.status, 403);
        const jtis = records.filter((r) => r.outcome === 'issued').map((r) => r.jti).sort();
        const payloads = [results[0].token, results[2].token].map((t: string) => JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()) as { jti: string });
        assert.deepEqual(jtis, payloads.map((p) => p.jti).sort());
        assert.ok(!readFileSync(file, 'utf8').includes(results[0].token), 'no token in the audit file');
      } finally {
        await signet.close();
      }
    } finally {
      await vault.stop();
    }
  });
});
