// Hostile tokens presented to POST /v1/verify, against a real Vault, each its own test. Where a forgery needs a
// genuinely valid signature (alg confusion with the same key, nested JWTs, garbage payloads, expired tokens), it
// is made with the real key through Vault's transit/sign, so the refusal cannot be a lucky signature failure:
// only the defence under test stands between the token and a 200.

import assert from 'node:assert/strict';
import { createPublicKey, verify as cryptoVerify, type webcrypto } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  calculateJwkThumbprint, CompactEncrypt, CompactSign, exportJWK, exportSPKI, generateKeyPair, importJWK, compactVerify, SignJWT, type JWK,
} from 'jose';
import { algSpec, type JwsAlg } from '../../src/jwt/algorithms.ts';
import { lowS } from '../../src/jwt/signature.ts';
import { eventually, startSignet, type TestSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const ISSUER = 'https://issuer.test';
const SKEW = 30;
const b64u = (data: string | Uint8Array) => Buffer.from(data).toString('base64url');
const json = (value: unknown) => b64u(JSON.stringify(value));
const now = () => Math.floor(Date.now() / 1000);

/** A compact JWS whose signature Vault makes with the real key, for any header and payload bytes. */
async function vaultSigned(vault: TestVault, key: string, signAs: JwsAlg, header: Record<string, unknown>, payload: string | Record<string, unknown>, version = 1): Promise<string> {
  const signingInput = `${json(header)}.${typeof payload === 'string' ? b64u(payload) : json(payload)}`;
  const input = Buffer.from(signingInput, 'ascii').toString('base64');
  const spec = algSpec(signAs);
  if (spec.operation === 'hmac') {
    const answer = await vault.api('POST', `transit/hmac/${key}/${spec.hash}`, { input, key_version: version });
    const hmac = (answer.data as { hmac: string }).hmac.replace(/^vault:v\d+:/, '');
    return `${signingInput}.${Buffer.from(hmac, 'base64').toString('base64url')}`;
  }
  const answer = await vault.api('POST', `transit/sign/${key}${spec.hash ? `/${spec.hash}` : ''}`, { input, key_version: version, ...spec.signParams });
  const signature = Buffer.from((answer.data as { signature: string }).signature.replace(/^vault:v\d+:/, ''), 'base64url');
  // As Signet does: ECDSA signatures in their low-S form (by the key's curve, which the length gives), so that a
  // refusal below is the defence under test, not the high-S rule.
  const curveAlg = ({ 64: 'ES256', 96: 'ES384', 132: 'ES512' } as Record<number, JwsAlg>)[signature.length];
  return `${signingInput}.${(signAs.startsWith('ES') && curveAlg ? lowS(curveAlg, signature) : signature).toString('base64url')}`;
}

describe('hostile tokens at /v1/verify', () => {
  let vault: TestVault;
  let signet: TestSignet;
  const kid: Record<string, string> = {};
  let jwks: { keys: JWK[] };
  let attacker: { privateKey: webcrypto.CryptoKey; publicKey: webcrypto.CryptoKey };
  const claims = () => ({ iss: ISSUER, sub: 'victim', aud: 'api', iat: now(), nbf: now(), exp: now() + 300 });

  async function verify(token: string, extra: Record<string, unknown> = {}) {
    return signet.post('/v1/verify', { token, ...extra });
  }
  async function refused(token: string, error: string | RegExp, extra: Record<string, unknown> = {}) {
    const response = await verify(token, extra);
    assert.equal(response.status, 401, JSON.stringify(response.body));
    assert.equal(response.body.valid, false);
    assert.ok(!('claims' in response.body) && !('header' in response.body), 'a refusal reveals no claims');
    if (typeof error === 'string') assert.ok(response.body.errors.includes(error), JSON.stringify(response.body.errors));
    else assert.ok(response.body.errors.some((e: string) => error.test(e)), JSON.stringify(response.body.errors));
  }

  before(async () => {
    vault = await startVault();
    await vault.createKey('rs', 'rsa-2048');
    await vault.createKey('es256', 'ecdsa-p256');
    await vault.createKey('es384', 'ecdsa-p384');
    await vault.createKey('hs', 'hmac');
    await vault.createKey('old', 'ecdsa-p256');
    signet = await startSignet(vault, [
      { name: 'rs', alg: 'RS256', audiences: ['api', 'other'] },
      { name: 'es256', audiences: ['api', 'other'] },
      { name: 'es384' },
      { name: 'hs', alg: 'HS256' },
      { name: 'old', max_ttl: '1m', default_ttl: '1m' },
    ], { config: { clock_skew: `${SKEW}s`, refresh_interval: '1s', default_key: 'es256' } });
    await signet.ready(20_000);
    for (const k of (await signet.get('/v1/keys')).body.keys) kid[k.name] = k.signing_kid;
    jwks = (await signet.get('/.well-known/jwks.json')).body;
    attacker = await generateKeyPair('ES256', { extractable: true }) as typeof attacker;
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  test('control: a token made by the forging helper with the right alg verifies (the refusals below are the defences)', async () => {
    for (const [key, alg] of [['rs', 'RS256'], ['es256', 'ES256'], ['es384', 'ES384'], ['hs', 'HS256']] as const) {
      const token = await vaultSigned(vault, key, alg, { alg, kid: kid[key], typ: 'JWT' }, claims());
      const response = await verify(token, { audience: 'api' });
      assert.equal(response.status, 200, `${key}: ${JSON.stringify(response.body)}`);
    }
  });

  test('alg "none" (and its spellings), with or without a signature', async () => {
    const payload = json(claims());
    await refused(`${json({ alg: 'none', kid: kid.es256 })}.${payload}.`, /non-empty unpadded base64url|"none"/);
    await refused(`${json({ alg: 'none', kid: kid.es256 })}.${payload}.${b64u('x')}`, 'header alg: "none" is never accepted');
    for (const alg of ['None', 'NONE', 'nOnE', '', null]) {
      await refused(`${json({ alg, kid: kid.es256 })}.${payload}.${b64u('x')}`, /^header alg: /);
    }
    await refused(`${json({ kid: kid.es256 })}.${payload}.${b64u('x')}`, 'header alg: missing');
  });

  test('HS256 signed with the public key as the HMAC secret (PEM, JWK, DER) is refused by the alg pin', async () => {
    for (const key of ['rs', 'es256']) {
      const jwk = jwks.keys.find((k) => k.kid === kid[key])!;
      const publicKey = createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
      const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
      const secrets = [
        Buffer.from(pem), Buffer.from(pem.trim()), Buffer.from(JSON.stringify(jwk)),
        publicKey.export({ type: 'spki', format: 'der' }), Buffer.from((await vault.readKey(key) as { keys: Record<string, { public_key: string }> }).keys['1']!.public_key),
      ];
      for (const secret of secrets) {
        const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: kid[key], typ: 'JWT' }).sign(new Uint8Array(secret));
        await refused(token, `header alg: HS256 is not the alg of this key (${key === 'rs' ? 'RS256' : 'ES256'})`);
      }
    }
    // The same confusion aimed at the HMAC key's kid: a token "signed" with a published public key as the secret.
    const pem = await exportSPKI(attacker.publicKey);
    const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: kid.hs }).sign(new TextEncoder().encode(pem));
    await refused(token, 'signature: does not verify');
  });

  test('RS256 key, PS256 token: a genuinely valid PSS signature by the same RSA key is refused by the alg pin', async () => {
    const token = await vaultSigned(vault, 'rs', 'PS256', { alg: 'PS256', kid: kid.rs }, claims());
    // Proof that only the pin stops it: the signature verifies as PS256 under the published key.
    const { alg: _alg, use: _use, kid: _kid, ...bare } = jwks.keys.find((k) => k.kid === kid.rs)!;
    await compactVerify(token, await importJWK(bare, 'PS256'), { algorithms: ['PS256'] });
    await refused(token, 'header alg: PS256 is not the alg of this key (RS256)');
    // And RS384/RS512 by the same key (another hash).
    for (const alg of ['RS384', 'RS512', 'PS384'] as const) {
      await refused(await vaultSigned(vault, 'rs', alg, { alg, kid: kid.rs }, claims()), `header alg: ${alg} is not the alg of this key (RS256)`);
    }
  });

  test('ES256 vs ES384: each key\'s own signature under the other alg\'s hash is refused by the alg pin', async () => {
    const on256 = await vaultSigned(vault, 'es256', 'ES384', { alg: 'ES384', kid: kid.es256 }, claims());
    const [h, p, s] = on256.split('.') as [string, string, string];
    const jwk256 = jwks.keys.find((k) => k.kid === kid.es256)!;
    const valid = cryptoVerify('sha384', Buffer.from(`${h}.${p}`), { key: createPublicKey({ key: jwk256 as import('node:crypto').JsonWebKey, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
    assert.equal(valid, true, 'a real P-256/SHA-384 signature');
    await refused(on256, 'header alg: ES384 is not the alg of this key (ES256)');
    const on384 = await vaultSigned(vault, 'es384', 'ES256', { alg: 'ES256', kid: kid.es384 }, claims());
    await refused(on384, 'header alg: ES256 is not the alg of this key (ES384)');
    // A real ES256 token with its kid swapped to the ES384 key's.
    const real = await vaultSigned(vault, 'es256', 'ES256', { alg: 'ES256', kid: kid.es384 }, claims());
    await refused(real, 'header alg: ES256 is not the alg of this key (ES384)');
  });

  test('a kid not in the key set: refused; the attacker\'s own key with a real kid: bad signature', async () => {
    const own = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid: 'attacker-kid' }).sign(attacker.privateKey);
    await refused(own, 'header kid: not in the key set (unknown or retired key version)');
    const thumb = await calculateJwkThumbprint(await exportJWK(attacker.publicKey));
    await refused(await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid: thumb }).sign(attacker.privateKey), /^header kid: not in the key set/);
    const impostor = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid: kid.es256 }).sign(attacker.privateKey);
    await refused(impostor, 'signature: does not verify');
    await refused(await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256' }).sign(attacker.privateKey), 'header kid: missing');
  });

  for (const name of ['jku', 'x5u', 'jwk', 'x5c'] as const) {
    test(`header ${name}: refused, even with a real kid and the attacker's key in it`, async () => {
      const publicJwk = await exportJWK(attacker.publicKey);
      const value = {
        jku: 'https://attacker.example/jwks.json',
        x5u: 'https://attacker.example/cert.pem',
        jwk: publicJwk,
        x5c: ['MIIBszCCAVmgAwIBAgIUQ0FGRUJBQkUwCgYIKoZIzj0EAwIw'],
      }[name];
      const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid: kid.es256, [name]: value } as never).sign(attacker.privateKey);
      await refused(token, `header ${name}: not accepted (keys come only from Signet's key set)`);
      // Even when the signature is the real key's.
      await refused(await vaultSigned(vault, 'es256', 'ES256', { alg: 'ES256', kid: kid.es256, [name]: value }, claims()), `header ${name}: not accepted (keys come only from Signet's key set)`);
    });
  }

  test('unknown crit (and b64=false): refused, even with a real signature', async () => {
    await refused(await vaultSigned(vault, 'es256', 'ES256', { alg: 'ES256', kid: kid.es256, crit: ['exp'], exp: 1 }, claims()), 'header crit: no critical extensions are supported');
    await refused(await vaultSigned(vault, 'es256', 'ES256', { alg: 'ES256', kid: kid.es256, crit: ['b64'], b64: false }, claims()), /^header (crit|b64): /);
    await refused(await vaultSigned(vault, 'es256', 'ES256', { alg: 'ES256', kid: kid.es256, b64: false }, claims()), 'header b64: unencoded payloads are not accepted');
    const signed = await new CompactSign(new TextEncoder().encode(JSON.stringify(claims())))
      .setProtectedHeader({ alg: 'ES256', kid: kid.es256, crit: ['urn:attacker'], 'urn:attacker': true }).sign(attacker.privateKey, { crit: { 'urn:attacker': true } });
    await refused(signed, 'header crit: no critical extensions are supported');
  });

  test('a JWE (five segments) is refused', async () => {
    const jwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(claims())))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: kid.es256 }).encrypt(new Uint8Array(32));
    assert.equal(jwe.split('.').length, 5);
    await refused(jwe, 'token is a JWE; only signed JWTs (JWS) are accepted');
  });

  test('a nested JWT (cty: JWT), validly signed by the real key, is refused', async () => {
    const inner = await new SignJWT({ ...claims(), admin: true }).setProtectedHeader({ alg: 'ES256', kid: 'inner' }).sign(attacker.privateKey);
    for (const cty of ['JWT', 'jwt']) {
      await refused(await vaultSigned(vault, 'es256', 'ES256', { alg: 'ES256', kid: kid.es256, cty }, inner), 'header cty: nested JWTs are not accepted');
    }
  });

  test('oversized tokens: 400 above 8192 characters (schema), 413 above the body limit; the server keeps answering', async () => {
    const real = await vaultSigned(vault, 'es256', 'ES256', { alg: 'ES256', kid: kid.es256 }, { ...claims(), pad: 'x'.repeat(9000) });
    const big = await verify(real);
    assert.equal(big.status, 400, JSON.stringify(big.body));
    assert.deepEqual(big.body, { errors: ['body.token: must NOT have more than 8192 characters'] });
    const huge = await verify(`${'a'.repeat(20_000)}.b.c`);
    assert.equal(huge.status, 413);
    assert.equal((await signet.get('/healthz')).status, 200);
  });

  test('malformed base64url and JSON in every segment', async () => {
    const h = json({ alg: 'ES256', kid: kid.es256 });
    const p = json(claims());
    const good = await vaultSigned(vault, 'es256', 'ES256', { alg: 'ES256', kid: kid.es256 }, claims());
    const s = good.split('.')[2]!;
    const segments = 'token segments must be non-empty unpadded base64url';
    for (const token of [`${h}=.${p}.${s}`, `${h}.${p}.${s}=`, `${h}.${p}+.${s}`, `${h}.${p}.${s.replace(/-/g, '+').replace(/_/g, '/')}x+/`, `${h}.${p} .${s}`, `${h}..${s}`, `.${p}.${s}`, `${h}.${p}.`]) {
      await refused(token, segments);
    }
    await refused('not-a-jwt', 'token is not a compact JWS (header.payload.signature)');
    await refused(`${h}.${p}.${s}.x`, 'token is not a compact JWS (header.payload.signature)');
    await refused(`${b64u('{"alg":"ES256",')}.${p}.${s}`, 'header is not base64url-encoded JSON');
    await refused(`${b64u('\xff\xfe{}')}.${p}.${s}`, 'header is not base64url-encoded JSON');
    await refused(`${json(['ES256'])}.${p}.${s}`, 'header is not a JSON object');
    await refused(`${json('ES256')}.${p}.${s}`, 'header is not a JSON object');
    // Validly signed by the real key, but the payload is not a JSON object.
    await refused(await vaultSigned(vault, 'es256', 'ES256', { alg: 'ES256', kid: kid.es256 }, '{"sub": "x",'), 'payload is not base64url-encoded JSON');
    await refused(await vaultSigned(vault, 'es256', 'ES256', { alg: 'ES256', kid: kid.es256 }, '[1,2]'), 'payload is not a JSON object');
    await refused(await vaultSigned(vault, 'es256', 'ES256', { alg: 'ES256', kid: kid.es256 }, 'null'), 'payload is not a JSON object');
    // The same bytes with stray bits in the signature's last character. An ES256 signature is 64 bytes: 86
    // characters carry 516 bits for 512, so the last character's lowest 4 bits are padding and flipping its lowest
    // bit gives a twin spelling of the very same signature (always; no search, no luck).
    const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    assert.equal(s.length, 86);
    assert.equal(Buffer.from(s, 'base64url').length, 64);
    const twin = `${s.slice(0, -1)}${ALPHABET[ALPHABET.indexOf(s.at(-1)!) ^ 1]}`;
    assert.notEqual(twin, s);
    assert.ok(Buffer.from(twin, 'base64url').equals(Buffer.from(s, 'base64url')), 'the twin decodes to the same bytes');
    const [gh, gp] = good.split('.') as [string, string];
    assert.equal((await verify(good)).status, 200, 'the canonical spelling verifies');
    await refused(`${gh}.${gp}.${twin}`, 'signature: not canonical base64url (stray bits or length in its last characters)');
  });

  test(`time claims with the configured clock skew (${SKEW}s): expired and not-yet-valid refused, within the skew accepted`, async () => {
    const sign = (payload: Record<string, unknown>) => vaultSigned(vault, 'es256', 'ES256', { alg: 'ES256', kid: kid.es256 }, payload);
    const base = { iss: ISSUER, sub: 'victim', aud: 'api' };
    await refused(await sign({ ...base, exp: now() - SKEW - 10 }), 'claim exp: the token has expired');
    assert.equal((await verify(await sign({ ...base, exp: now() - SKEW + 10 }))).status, 200, 'expired, but within the skew');
    await refused(await sign({ ...base, exp: now() + 60, nbf: now() + SKEW + 10 }), 'claim nbf: the token is not valid yet');
    assert.equal((await verify(await sign({ ...base, exp: now() + 60, nbf: now() + SKEW - 10 }))).status, 200, 'not yet valid, but within the skew');
    await refused(await sign({ ...base, exp: now() + 60, iat: now() + SKEW + 10 }), 'claim iat: issued in the future');
    await refused(await sign({ ...base }), 'claim exp: missing or not a number');
    await refused(await sign({ ...base, exp: String(now() + 60) }), 'claim exp: missing or not a number');
    await refused(await sign({ ...base, exp: now() + 60, nbf: 'soon' }), 'claim nbf: not a number');
  });

  test('wrong iss or aud: refused (the key\'s issuer by default, or the one the request asks for)', async () => {
    const sign = (payload: Record<string, unknown>) => vaultSigned(vault, 'es256', 'ES256', { alg: 'ES256', kid: kid.es256 }, payload);
    await refused(await sign({ ...claims(), iss: 'https://attacker.example' }), 'claim iss: does not match the expected issuer');
    const noIss = { ...claims() } as Record<string, unknown>;
    delete noIss.iss;
    await refused(await sign(noIss), 'claim iss: does not match the expected issuer');
    await refused(await sign(claims()), 'claim iss: does not match the expected issuer', { issuer: 'https://other.test' });
    await refused(await sign({ ...claims(), aud: 'other' }), 'claim aud: does not include the expected audience', { audience: 'api' });
    await refused(await sign({ ...claims(), aud: ['other', 'more'] }), 'claim aud: does not include the expected audience', { audience: 'api' });
    const noAud = { ...claims() } as Record<string, unknown>;
    delete noAud.aud;
    await refused(await sign(noAud), 'claim aud: does not include the expected audience', { audience: 'api' });
    // Signet's own tokens follow the same rules.
    const issued = await signet.post('/v1/sign/es256', { claims: { aud: 'other' } });
    assert.equal(issued.status, 200);
    await refused(issued.body.token, 'claim aud: does not include the expected audience', { audience: 'api' });
  });

  test('a token of a retired version (min_decryption_version raised) is refused', async () => {
    const issued = await signet.post('/v1/sign/old', { claims: { sub: 'before-revocation' } });
    assert.equal(issued.status, 200);
    assert.equal((await verify(issued.body.token)).status, 200);
    await vault.rotate('old');
    await vault.configKey('old', { min_decryption_version: 2 });
    await eventually(async () => (await verify(issued.body.token)).status === 401, 10_000, 'v1 retired');
    await refused(issued.body.token, 'header kid: not in the key set (unknown or retired key version)');
    // A new token from the same key is signed by v2, and verifies.
    const fresh = await signet.post('/v1/sign/old', { claims: {} });
    assert.equal(fresh.body.key_version, 2);
    assert.equal((await verify(fresh.body.token)).status, 200);
  });

  test('after every hostile token the server still answers, and Signet\'s own tokens still verify', async () => {
    assert.equal((await signet.get('/healthz')).status, 200);
    const issued = await signet.post('/v1/sign', { claims: { sub: 'still-here', aud: 'api' } });
    assert.equal((await verify(issued.body.token, { audience: 'api' })).status, 200);
  });
});

describe('unknown kids: one rate-limited refresh, not a Vault read per token', () => {
  let vault: TestVault;
  let signet: TestSignet;
  let attacker: webcrypto.CryptoKey;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
    // A long refresh interval, so that only on-demand refreshes read the key during the test.
    signet = await startSignet(vault, [{ name: 'app' }], { config: { refresh_interval: '1h', clock_skew: '5s' } });
    await signet.ready(10_000);
    attacker = (await generateKeyPair('ES256')).privateKey;
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  async function keyReads(): Promise<number> {
    const text = (await signet.get('/metrics')).text;
    return [...text.matchAll(/^signet_vault_requests_total\{operation="read_key",outcome="\w+"\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  }

  test('a new version\'s kid (created after the last refresh) is found by the on-demand refresh', async () => {
    await vault.rotate('app');
    const key = await vault.readKey('app') as { keys: Record<string, { public_key: string }> };
    const jwk = createPublicKey(key.keys['2']!.public_key).export({ format: 'jwk' }) as JWK;
    const newKid = await calculateJwkThumbprint(jwk);
    const before = await keyReads();
    const token = await vaultSigned(vault, 'app', 'ES256', { alg: 'ES256', kid: newKid }, { iss: ISSUER, exp: now() + 60 }, 2);
    const response = await signet.post('/v1/verify', { token });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(response.body.key_version, 2);
    assert.equal(await keyReads() - before, 1, 'exactly one key read');
  });

  test('50 unknown kids at once, then 50 one after another: at most one Vault key read per rate-limit window, and all are refused', async () => {
    const forge = (i: number) => new SignJWT({ iss: ISSUER, exp: now() + 60 }).setProtectedHeader({ alg: 'ES256', kid: `forged-${i}` }).sign(attacker);
    const refusedForKid = (answer: { status: number; body: any }) => {
      assert.equal(answer.status, 401);
      assert.deepEqual(answer.body.errors, ['header kid: not in the key set (unknown or retired key version)']);
    };
    const burst = await Promise.all(Array.from({ length: 50 }, (_, i) => forge(i)));
    const before = await keyReads();
    const started = Date.now();
    for (const answer of await Promise.all(burst.map((token) => signet.post('/v1/verify', { token })))) refusedForKid(answer);
    // One after another: each would start a refresh of its own if only concurrency, not time, limited them.
    for (let i = 50; i < 100; i++) refusedForKid(await signet.post('/v1/verify', { token: await forge(i) }));
    const elapsed = Date.now() - started;
    const reads = await keyReads() - before;
    // On-demand reads are at least min(5 s, refresh_interval) apart, so however long the 100 requests took on a
    // loaded machine, the interval [started, now] holds at most floor(elapsed / gap) + 1 of them (one key here).
    const gapMs = Math.min(5, signet.config.refreshInterval) * 1000;
    const allowed = Math.floor(elapsed / gapMs) + 1;
    process.stderr.write(`unknown kids: ${reads} Vault key reads for 100 forged kids in ${elapsed} ms (at most ${allowed})\n`);
    assert.ok(reads <= allowed, `${reads} Vault key reads for 100 forged kids in ${elapsed} ms (at most ${allowed})`);
  });
});
