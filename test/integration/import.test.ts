// Adoption without a logout, against a real Vault: `signet keys import` (the real command line, with an operator
// token of deploy/vault/operator-policy.hcl, through a recording proxy in front of Vault) moves an RSA key, an EC
// key, an Ed25519 key and an HMAC secret into Transit. Tokens signed the old way (jose, holding the key as an app
// does, with its own kid or none) keep verifying through /v1/verify and a JWKS-only verifier; tokens Signet signs
// afterwards verify the same ways; Vault's own transit/verify takes both; the key cannot be exported; the wire
// never carried the key in any encoding; after legacy_until the old tokens are refused and the alias kid leaves
// the JWKS (with a log line and a metric); weak inputs are refused with actionable messages and nothing written.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { createLocalJWKSet, jwtVerify, SignJWT, type JWK } from 'jose';
import { algSpec, type JwsAlg } from '../../src/jwt/algorithms.ts';
import { builtSignet } from '../harness/build.ts';
import { ROOT, policyRules } from '../harness/ops.ts';
import { startRecorder, type Recorder } from '../harness/recorder.ts';
import { eventually, startSignet, type TestSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const run = promisify(execFile);
// The keys commands as the image runs them: the production bundle (test/harness/build.ts).
const CLI = await builtSignet();
const dir = mkdtempSync(join(tmpdir(), 'signet-import-'));
const ISSUER = 'https://old-issuer.test';
const OPERATOR_POLICY = readFileSync(join(ROOT, 'deploy', 'vault', 'operator-policy.hcl'), 'utf8');

interface Case {
  name: string;
  alg: JwsAlg;
  /** The kid the old system put in its tokens; undefined: none (accept_missing_kid). */
  oldKid?: string;
  file: string;
  /** What the app signs with, and what must never cross the wire. */
  signingKey: KeyObject | Uint8Array;
  secrets: Buffer[];
  args: string[];
}

function writeSecret(name: string, content: string | Buffer, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, content, { mode });
  chmodSync(path, mode);
  return path;
}

function asymmetricCase(name: string, alg: JwsAlg, pair: { privateKey: KeyObject }, oldKid: string): Case {
  const der = pair.privateKey.export({ format: 'der', type: 'pkcs8' });
  const jwk = pair.privateKey.export({ format: 'jwk' }) as Record<string, string>;
  const parts = ['d', 'p', 'q', 'dp', 'dq', 'qi'].filter((p) => jwk[p]).map((p) => Buffer.from(jwk[p]!, 'base64url'));
  const file = writeSecret(`${name}.pem`, pair.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string);
  return { name, alg, oldKid, file, signingKey: pair.privateKey, secrets: [der, ...parts], args: ['--key-file', file, '--alg', alg] };
}

/** Every way the bytes could travel: raw, hex, base64 and base64url at each byte alignment, the PEM's own lines. */
function spellings(secret: Buffer): Array<[string, Buffer | string]> {
  const out: Array<[string, Buffer | string]> = [['raw', secret], ['hex', secret.toString('hex')], ['HEX', secret.toString('hex').toUpperCase()]];
  for (let shift = 0; shift < 3; shift++) {
    const part = secret.subarray(shift);
    // Drop the last characters, which depend on what follows the secret in a larger encoded blob.
    out.push([`base64+${shift}`, part.toString('base64').slice(0, -4)], [`base64url+${shift}`, part.toString('base64url').slice(0, -4)]);
  }
  return out;
}

const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
function isHighS256(token: string): boolean {
  const s = Buffer.from(token.split('.')[2]!, 'base64url').subarray(32);
  return BigInt(`0x${s.toString('hex')}`) > P256_ORDER >> 1n;
}

async function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function oldToken(c: Case, sub: string): Promise<string> {
  return new SignJWT({ sub, aud: 'api' })
    .setProtectedHeader(c.oldKid === undefined ? { alg: c.alg, typ: 'JWT' } : { alg: c.alg, kid: c.oldKid, typ: 'JWT' })
    .setIssuer(ISSUER).setIssuedAt().setExpirationTime('2h')
    .sign(c.signingKey);
}

/**
 * POST /v1/sign, retried while Signet sheds it for event-loop lag (503 "overloaded; retry shortly", as a client
 * would): the machine running these tests is shared, and shedding is not what this file tests.
 */
async function sign(signet: TestSignet, key: string, claims: Record<string, unknown>): Promise<{ status: number; body: any }> {
  let last: { status: number; body: any } | undefined;
  await eventually(async () => {
    last = await signet.post(`/v1/sign/${key}`, { claims });
    return !(last.status === 503 && /overloaded/.test(JSON.stringify(last.body)));
  }, 30_000, `a sign with ${key} that is not shed`);
  return last!;
}

/** Vault's own transit/verify of a JWS (version 1 is the imported key). */
async function vaultVerifies(vault: TestVault, c: Case, token: string, version: number): Promise<boolean> {
  const [h, p, s] = token.split('.') as [string, string, string];
  const spec = algSpec(c.alg);
  if (spec.operation === 'hmac') {
    return vault.transitVerify(c.name, spec.hash, `${h}.${p}`, `hmac:vault:v${version}:${Buffer.from(s, 'base64url').toString('base64')}`);
  }
  return vault.transitVerify(c.name, spec.hash, `${h}.${p}`, `vault:v${version}:${s}`, { ...spec.signParams });
}

describe('signet keys import: moving existing keys into a real Vault without logging anyone out', () => {
  let vault: TestVault;
  let recorder: Recorder;
  let operatorToken: string;
  let signet: TestSignet;
  const cases: Case[] = [];
  const before_: Record<string, string> = {};
  const importedAt: Record<string, number> = {};
  // A partner's key whose private half cannot be imported: its public key is published verify-only until a date.
  const partner = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const partnerFile = join(dir, 'partner.pub.pem');
  let partnerToken: string;
  const staticKey = (until: string) => ({ name: 'partner-2020', file: partnerFile, kid: 'partner-2020', issuer: 'https://partner.test', until });

  before(async () => {
    vault = await startVault();
    recorder = await startRecorder(vault.address);
    await vault.api('PUT', 'sys/policies/acl/signet-operator', { policy: OPERATOR_POLICY });
    const created = await vault.api('POST', 'auth/token/create', { policies: ['signet-operator'], no_default_policy: true, ttl: '1h' });
    operatorToken = (created.auth as { client_token: string }).client_token;
    cases.push(
      asymmetricCase('rsa-old', 'RS256', generateKeyPairSync('rsa', { modulusLength: 2048 }), 'rsa-2019'),
      asymmetricCase('ec-old', 'ES256', generateKeyPairSync('ec', { namedCurve: 'P-256' }), 'ec-2021'),
      asymmetricCase('ed-old', 'EdDSA', generateKeyPairSync('ed25519'), 'ed-2022'),
    );
    const secret = randomBytes(48);
    cases.push({
      name: 'hs-old', alg: 'HS256', file: writeSecret('hs.secret', `${secret.toString('base64')}\n`),
      signingKey: new Uint8Array(secret), secrets: [secret], args: ['--hmac-secret-file', join(dir, 'hs.secret'), '--hmac-encoding', 'base64'],
    });
    writeFileSync(partnerFile, partner.publicKey.export({ format: 'pem', type: 'spki' }) as string);
    partnerToken = await new SignJWT({ sub: 'partner-user', aud: 'api' }).setProtectedHeader({ alg: 'ES384', kid: 'partner-2020' })
      .setIssuer('https://partner.test').setIssuedAt().setExpirationTime('2h').sign(partner.privateKey);
    // Tokens the old system minted before the move. The old ES256 one has a high S (as about half of all ECDSA
    // signatures do): the old system did not normalise them, so they must verify all the same.
    for (const c of cases) before_[c.name] = await oldToken(c, `before-${c.name}`);
    while (!isHighS256(before_['ec-old']!)) before_['ec-old'] = await oldToken(cases[1]!, 'before-ec-old');
  });

  after(async () => {
    await signet?.close();
    await recorder?.close();
    await vault?.stop();
  });

  test('the operator policy grants the import paths, and Signet\'s own policy does not', () => {
    const operator = Object.fromEntries(policyRules(OPERATOR_POLICY));
    assert.deepEqual(operator['transit/wrapping_key'], ['read']);
    assert.deepEqual(operator['transit/keys/+/import'], ['update']);
    assert.equal(operator['transit/keys/+/import_version'], undefined);
    const signetPolicy = [...policyRules(readFileSync(join(ROOT, 'vault-policy.hcl'), 'utf8')).keys()];
    assert.ok(signetPolicy.every((p) => !p.includes('import') && !p.includes('wrapping_key')), signetPolicy.join(', '));
  });

  test('each key is imported by the command line with an operator token; it prints what to do with the plaintext and the policy', async () => {
    for (const c of cases) {
      const from = recorder.requests.length;
      const result = await cli(['keys', 'import', c.name, ...c.args], { VAULT_ADDR: recorder.url, VAULT_TOKEN: operatorToken, SIGNET_CONFIG: '' });
      assert.equal(result.code, 0, `${c.name}: ${result.stderr}`);
      assert.match(result.stdout, new RegExp(`imported .* into Transit key ${c.name} \\(.*, ${c.alg}\\): not exportable, no plaintext backup`));
      assert.match(result.stdout, new RegExp(`shred -u ${c.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      assert.match(result.stdout, /kubectl delete secret/);
      assert.match(result.stdout, new RegExp(`path "transit/keys/${c.name}" \\{\\n  capabilities = \\["read"\\]\\n\\}`));
      const spec = algSpec(c.alg);
      assert.match(result.stdout, new RegExp(`path "transit/${spec.operation === 'hmac' ? 'hmac' : 'sign'}/${c.name}${spec.hash ? `/${spec.hash}` : ''}" \\{`));
      const writes = recorder.requests.slice(from).filter((r) => r.method !== 'GET' && r.path.startsWith('/v1/transit/'));
      assert.deepEqual(writes.map((r) => `${r.method} ${r.path}`), [`POST /v1/transit/keys/${c.name}/import`]);
      const body = JSON.parse(writes[0]!.body.toString('utf8')) as Record<string, unknown>;
      assert.deepEqual(Object.keys(body).sort(), ['allow_plaintext_backup', 'allow_rotation', 'ciphertext', 'exportable', 'hash_function', 'type']);
      assert.equal(body.exportable, false);
      assert.equal(body.allow_plaintext_backup, false);
      assert.equal(body.hash_function, 'SHA256');
      const key = await vault.readKey(c.name);
      assert.equal(key.imported_key, true);
      assert.equal(key.exportable, false);
      assert.equal(key.allow_plaintext_backup, false);
      assert.equal(key.latest_version, 1);
      const v1 = (key.keys as Record<string, { creation_time?: string }> | undefined)?.['1'];
      importedAt[c.name] = v1?.creation_time ? Date.parse(v1.creation_time) / 1000 : 0;
    }
  });

  test('no request on the wire carried the key material, in any encoding', () => {
    const bodies = recorder.requests.map((r) => r.body);
    assert.ok(bodies.length > cases.length);
    for (const c of cases) {
      for (const secret of c.secrets) {
        for (const [how, spelled] of spellings(secret)) {
          for (const body of bodies) {
            const found = typeof spelled === 'string' ? body.toString('latin1').includes(spelled) : body.includes(spelled);
            assert.ok(!found, `${c.name}: the key went over the wire (${how})`);
          }
        }
      }
    }
    const pem = readFileSync(cases[0]!.file, 'utf8').split('\n').filter((l) => l.length === 64);
    assert.ok(pem.length > 5);
    for (const line of pem) for (const body of bodies) assert.ok(!body.toString('latin1').includes(line), 'a PEM line went over the wire');
  });

  test('Vault refuses to export the imported keys, even to its root token', async () => {
    for (const c of cases) {
      for (const kind of c.alg.startsWith('HS') ? ['hmac-key'] : ['signing-key']) {
        const answer = await fetch(`${vault.address}/v1/transit/export/${kind}/${c.name}`, { headers: { 'x-vault-token': vault.rootToken } });
        assert.equal(answer.status, 400, `${c.name}: export answered ${answer.status}`);
        assert.match(await answer.text(), /not exportable/);
      }
    }
  });

  test('Signet with the aliases: old tokens verify through /v1/verify and the JWKS, new ones too, and Vault agrees', async () => {
    signet = await startSignet(vault, cases.map((c) => ({
      name: c.name, alg: c.alg, issuer: ISSUER, audiences: ['api'],
      ...(c.oldKid === undefined ? { accept_missing_kid: true } : { legacy_kid: c.oldKid }),
      // A duration counted from the import for the asymmetric keys; a date for HMAC (Transit gives it no creation time).
      legacy_until: c.alg.startsWith('HS') ? new Date(Date.now() + 3600_000).toISOString() : '1h',
    })), { config: { log_level: 'info', refresh_interval: '2s', static_keys: [staticKey(new Date(Date.now() + 3600_000).toISOString())] } });
    await signet.ready(30_000);
    const jwks = (await signet.get('/.well-known/jwks.json')).body as { keys: JWK[] };
    const localJwks = createLocalJWKSet(jwks);
    for (const c of cases) {
      const oldOne = before_[c.name]!;
      const verified = await signet.post('/v1/verify', { token: oldOne, audience: 'api' });
      assert.equal(verified.status, 200, `${c.name}: ${JSON.stringify(verified.body)}`);
      assert.equal(verified.body.key, c.name);
      assert.equal(verified.body.key_version, 1);
      assert.equal(verified.body.claims.sub, `before-${c.name}`);
      assert.equal(verified.body.header.kid, c.oldKid);
      assert.equal(await vaultVerifies(vault, c, oldOne, 1), true, `${c.name}: Vault verifies the old token under the imported version`);

      const signed = await sign(signet, c.name, { sub: `after-${c.name}`, aud: 'api' });
      assert.equal(signed.status, 200, JSON.stringify(signed.body));
      assert.equal(signed.body.key_version, 1, 'the imported version signs');
      assert.notEqual(signed.body.kid, c.oldKid, 'with Signet\'s own kid');
      const again = await signet.post('/v1/verify', { token: signed.body.token, audience: 'api' });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(await vaultVerifies(vault, c, signed.body.token, 1), true);

      if (!c.alg.startsWith('HS')) {
        // A verifier that has nothing but Signet's JWKS: the same key material under both kids.
        const a = jwks.keys.find((k) => k.kid === c.oldKid)!;
        const b = jwks.keys.find((k) => k.kid === signed.body.kid)!;
        assert.ok(a && b, `${c.name}: both kids in the JWKS`);
        assert.deepEqual({ ...a, kid: '' }, { ...b, kid: '' });
        for (const token of [oldOne, signed.body.token as string]) {
          const { payload } = await jwtVerify(token, localJwks, { algorithms: [c.alg], issuer: ISSUER, audience: 'api' });
          assert.ok(String(payload.sub).endsWith(c.name));
        }
      } else {
        assert.ok(!jwks.keys.some((k) => k.alg?.startsWith('HS')), 'no HMAC key in the JWKS, under any kid');
      }
    }
    const keys = (await signet.get('/v1/keys')).body.keys as Array<{ name: string; legacy?: { kid: string | null; state: string; until: string } }>;
    const rsa = keys.find((k) => k.name === 'rsa-old')!;
    assert.equal(rsa.legacy?.kid, 'rsa-2019');
    assert.equal(rsa.legacy?.state, 'active');
    assert.equal(Date.parse(rsa.legacy!.until), Math.round((importedAt['rsa-old']! + 3600) * 1000), 'legacy_until counted from the import as Vault recorded it');
    const metrics = (await signet.get('/metrics')).text;
    assert.match(metrics, /^signet_legacy_alias_active\{key="rsa-old",kind="legacy_kid"\} 1$/m);
    assert.match(metrics, /^signet_legacy_alias_active\{key="hs-old",kind="missing_kid"\} 1$/m);
    assert.match(metrics, /^signet_legacy_verifications_total\{key="hs-old",kind="missing_kid"\} 1$/m);
    assert.ok(signet.logs.some((l) => /"event":"legacy_alias"/.test(l) && /"to":"active"/.test(l) && /rsa-2019/.test(l)));
  });

  test('a static key: published, verified, never signing; shown as verify-only (static) with its end date', async () => {
    const jwks = (await signet.get('/.well-known/jwks.json')).body as { keys: JWK[] };
    const published = jwks.keys.find((k) => k.kid === 'partner-2020');
    assert.deepEqual(published, { ...partner.publicKey.export({ format: 'jwk' }), kid: 'partner-2020', alg: 'ES384', use: 'sig' });
    await jwtVerify(partnerToken, createLocalJWKSet(jwks), { algorithms: ['ES384'], issuer: 'https://partner.test', audience: 'api' });
    const verified = await signet.post('/v1/verify', { token: partnerToken, audience: 'api' });
    assert.equal(verified.status, 200, JSON.stringify(verified.body));
    assert.equal(verified.body.key, 'partner-2020');
    assert.equal(verified.body.key_version, 0);
    const signed = await sign(signet, 'partner-2020', { sub: 'x' });
    assert.equal(signed.status, 404, 'never signs');
    const keys = (await signet.get('/v1/keys')).body.keys as Array<{ name: string; type: string; versions: Array<{ kid: string; state: string; next_change_at: string }> }>;
    const entry = keys.find((k) => k.name === 'partner-2020')!;
    assert.equal(entry.type, 'static');
    assert.equal(entry.versions[0]!.state, 'verify-only (static)');
    assert.equal(entry.versions[0]!.kid, 'partner-2020');
    assert.ok(Date.parse(entry.versions[0]!.next_change_at) > Date.now());
  });

  test('signet keys status shows the alias with its end and the static key as verify-only (static)', async () => {
    const file = join(dir, 'status.yaml');
    writeFileSync(file, JSON.stringify({
      vault: { address: vault.address },
      keys: [{ name: 'rsa-old', alg: 'RS256', issuer: ISSUER, legacy_kid: 'rsa-2019', legacy_until: '1h' }],
      static_keys: [staticKey('2099-01-01')],
    }));
    const result = await cli(['keys', 'status', '--config', file], { VAULT_TOKEN: vault.rootToken, VAULT_ADDR: '' });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /old tokens \(kid rsa-2019\) → v1: accepted until \d{4}-\d\d-\d\dT/);
    assert.match(result.stdout, /partner-2020\s+partner-2020\s+ES384\s+verify-only \(static\)\s+2099-01-01T00:00:00Z/);
  });

  test('a token without a kid, or with an unknown kid, is still refused for keys without the alias', async () => {
    const c = cases.find((x) => x.name === 'ec-old')!;
    const noKid = await new SignJWT({ sub: 'x', aud: 'api' }).setProtectedHeader({ alg: 'ES256' }).setIssuer(ISSUER).setExpirationTime('1h').sign(c.signingKey);
    const answer = await signet.post('/v1/verify', { token: noKid, audience: 'api' });
    assert.equal(answer.status, 401);
    assert.match(answer.body.errors.join(' '), /header (alg|kid)/, 'a kid-less ES256 token is not tried against the HMAC key with accept_missing_kid');
  });

  test('after legacy_until the old tokens are refused and the alias kids leave the JWKS, with a log line and a metric', async () => {
    // The same keys, with legacy_until passing a few seconds from now (a date) while Signet runs.
    const until = new Date(Date.now() + 4000).toISOString();
    const later = await startSignet(vault, cases.map((c) => ({
      name: c.name, alg: c.alg, issuer: ISSUER, audiences: ['api'],
      ...(c.oldKid === undefined ? { accept_missing_kid: true } : { legacy_kid: c.oldKid }), legacy_until: until,
    })), { config: { log_level: 'info', refresh_interval: '1s', jwks: { max_age: 1 }, static_keys: [staticKey(until)] } });
    try {
      await later.ready(30_000);
      assert.equal((await later.post('/v1/verify', { token: before_['ec-old'], audience: 'api' })).status, 200, 'accepted before');
      await eventually(async () => later.logs.some((l) => /"event":"legacy_alias"/.test(l) && /"to":"expired"/.test(l) && /ec-2021/.test(l)), 30_000, 'the expiry log line');
      for (const c of cases) {
        const refused = await later.post('/v1/verify', { token: before_[c.name], audience: 'api' });
        assert.equal(refused.status, 401, `${c.name}: ${JSON.stringify(refused.body)}`);
        assert.match(refused.body.errors.join(' '), c.oldKid === undefined ? /header kid: missing/ : /header kid: not in the key set/);
      }
      const kids = ((await later.get('/.well-known/jwks.json')).body as { keys: JWK[] }).keys.map((k) => k.kid);
      for (const c of cases) if (c.oldKid) assert.ok(!kids.includes(c.oldKid), `${c.oldKid} left the JWKS`);
      assert.ok(!kids.includes('partner-2020'), 'the static key left the JWKS at its date');
      assert.equal((await later.post('/v1/verify', { token: partnerToken, audience: 'api' })).status, 401);
      assert.equal(kids.length, 3, 'Signet\'s own kids of the three asymmetric keys stay');
      const fresh = await sign(later, 'rsa-old', { sub: 'after', aud: 'api' });
      assert.equal((await later.post('/v1/verify', { token: fresh.body.token, audience: 'api' })).status, 200, 'new tokens are unaffected');
      const metrics = (await later.get('/metrics')).text;
      assert.match(metrics, /^signet_legacy_alias_active\{key="ec-old",kind="legacy_kid"\} 0$/m);
      assert.match(metrics, /^signet_legacy_alias_active\{key="hs-old",kind="missing_kid"\} 0$/m);
      assert.match(metrics, /^signet_legacy_alias_active\{key="partner-2020",kind="static"\} 0$/m);
      const keys = (await later.get('/v1/keys')).body.keys as Array<{ name: string; legacy?: { state: string } }>;
      assert.equal(keys.find((k) => k.name === 'ed-old')?.legacy?.state, 'expired');
    } finally {
      await later.close();
    }
  });

  test('the imported version rotates out like any other: publish, switch, retire; the alias goes with it', async () => {
    const c = cases.find((x) => x.name === 'ec-old')!;
    await vault.rotate(c.name);
    await vault.configKey(c.name, { min_encryption_version: 2 });
    let last: unknown;
    await eventually(async () => {
      const signed = await sign(signet, c.name, { sub: 'rotated', aud: 'api' });
      last = signed.body;
      return signed.status === 200 && signed.body.key_version === 2;
    }, 60_000, 'signing with version 2').catch((error: Error) => {
      throw new Error(`${error.message}; last answer ${JSON.stringify(last)}; keys ${JSON.stringify(signet.logs.filter((l) => /key_load_failed|version_state/.test(l)).slice(-5))}`);
    });
    assert.equal((await signet.post('/v1/verify', { token: before_[c.name], audience: 'api' })).status, 200, 'v1 is verify-only: old tokens still pass');
    await vault.configKey(c.name, { min_decryption_version: 2 });
    await eventually(async () => (await signet.post('/v1/verify', { token: before_[c.name], audience: 'api' })).status === 401, 60_000, 'v1 retired');
    const kids = ((await signet.get('/.well-known/jwks.json')).body as { keys: JWK[] }).keys.map((k) => k.kid);
    assert.ok(!kids.includes(c.oldKid), 'the alias left with the retired version');
    const keys = (await signet.get('/v1/keys')).body.keys as Array<{ name: string; legacy?: { state: string } }>;
    assert.equal(keys.find((k) => k.name === c.name)?.legacy?.state, 'version-retired');
  });

  describe('weak or unsafe inputs are refused with a message a user can act on, and nothing is written to Vault', () => {
    async function refusedImport(args: string[], name: string, ...patterns: RegExp[]): Promise<void> {
      const listBefore = (await vault.api('LIST', 'transit/keys')).data as { keys: string[] };
      const from = recorder.requests.length;
      const result = await cli(['keys', 'import', name, ...args], { VAULT_ADDR: recorder.url, VAULT_TOKEN: operatorToken, SIGNET_CONFIG: '' });
      assert.equal(result.code, 2, result.stderr);
      for (const p of patterns) assert.match(result.stderr, p);
      assert.deepEqual(recorder.requests.slice(from).filter((r) => r.method !== 'GET' && !r.path.startsWith('/v1/auth/token/')).map((r) => `${r.method} ${r.path}`), [], 'no write reached Vault');
      assert.deepEqual((await vault.api('LIST', 'transit/keys')).data, listBefore, 'Vault holds the same keys');
    }

    test('a 16-byte HMAC secret', async () => {
      await refusedImport(['--hmac-secret-file', writeSecret('short.secret', randomBytes(16))], 'weak-hmac',
        /16 bytes \(128 bits\)/, /at least 32 bytes \(256 bits\)/, /signet keys create NAME --type hmac/);
    });

    test('an RSA-1024 key', async () => {
      const pem = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
      await refusedImport(['--key-file', writeSecret('rsa1024.pem', pem), '--alg', 'RS256'], 'weak-rsa', /RSA-1024 is too weak/, /at least 2048 bits/);
    });

    test('a key file readable by others (and it is imported with --force)', async () => {
      const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
      const file = writeSecret('world.pem', pem, 0o644);
      await refusedImport(['--key-file', file], 'world-readable', /readable by its group and others \(mode 644\)/, /chmod 600/, /--force/);
      const forced = await cli(['keys', 'import', 'world-readable', '--key-file', file, '--force'], { VAULT_ADDR: vault.address, VAULT_TOKEN: operatorToken, SIGNET_CONFIG: '' });
      assert.equal(forced.code, 0, forced.stderr);
    });

    test('an existing key name: refused before the wrapping key is even read', async () => {
      const from = recorder.requests.length;
      const before = JSON.stringify(await vault.readKey('rsa-old'));
      await refusedImport(['--key-file', cases[1]!.file], 'rsa-old', /Transit key "rsa-old" already exists/, /never replaces a key/, /Pick another name/);
      assert.ok(!recorder.requests.slice(from).some((r) => r.path.includes('wrapping_key')));
      assert.equal(JSON.stringify(await vault.readKey('rsa-old')), before, 'the existing key is untouched');
    });

    test('Signet\'s own token (vault-policy.hcl) cannot import', async () => {
      await vault.api('PUT', 'sys/policies/acl/signet', { policy: readFileSync(join(ROOT, 'vault-policy.hcl'), 'utf8') });
      const created = await vault.api('POST', 'auth/token/create', { policies: ['signet'], no_default_policy: true, ttl: '10m' });
      const token = (created.auth as { client_token: string }).client_token;
      const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
      const result = await cli(['keys', 'import', 'app', '--key-file', writeSecret('signet-token.pem', pem)], { VAULT_ADDR: vault.address, VAULT_TOKEN: token, SIGNET_CONFIG: '' });
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /operator-policy\.hcl/);
    });
  });
});
