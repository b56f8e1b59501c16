// The core promise, against a real Vault: every algorithm signs through Transit, and each token verifies with
// jose using only the JWKS (asymmetric), with Vault's own transit/verify, and through POST /v1/verify.

import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWK } from 'jose';
import { algSpec, type JwsAlg } from '../../src/jwt/algorithms.ts';
import { postSign, startSignet, withinOneRefresh, type TestSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const KEYS: Array<{ name: string; type: string; alg: JwsAlg }> = [
  { name: 'eddsa', type: 'ed25519', alg: 'EdDSA' },
  { name: 'ed25519', type: 'ed25519', alg: 'Ed25519' },
  { name: 'es256', type: 'ecdsa-p256', alg: 'ES256' },
  { name: 'es384', type: 'ecdsa-p384', alg: 'ES384' },
  { name: 'es512', type: 'ecdsa-p521', alg: 'ES512' },
  { name: 'rs256', type: 'rsa-2048', alg: 'RS256' },
  { name: 'rs384', type: 'rsa-2048', alg: 'RS384' },
  { name: 'rs512', type: 'rsa-2048', alg: 'RS512' },
  { name: 'ps256', type: 'rsa-2048', alg: 'PS256' },
  { name: 'ps384', type: 'rsa-2048', alg: 'PS384' },
  { name: 'ps512', type: 'rsa-2048', alg: 'PS512' },
  { name: 'hs256', type: 'hmac', alg: 'HS256' },
  { name: 'hs384', type: 'hmac', alg: 'HS384' },
  { name: 'hs512', type: 'hmac', alg: 'HS512' },
];

/** Vault's transit/verify parameters that match the JWS alg (the same table Signet signs with). */
function vaultVerifyParams(alg: JwsAlg): { hash?: string; extra: Record<string, unknown> } {
  const spec = algSpec(alg);
  return { hash: spec.hash, extra: { ...spec.signParams } };
}

const REFRESH_MS = 1000;
/**
 * Beyond refresh_interval, a change made in Vault can wait for: a periodic read that began just before the change
 * (it returns the old state; the next one starts at most refresh_interval after it ends), one more read of all 14
 * keys (tens of ms idle), and the test's 20 ms poll and request: 750 ms, still under a second refresh. Time the
 * event loop of this process (Signet's too) stood still on a loaded CI is measured and added by withinOneRefresh.
 */
const REFRESH_MARGIN_MS = 750;

describe('sign and verify every algorithm against a real Vault', () => {
  let vault: TestVault;
  let signet: TestSignet;

  before(async () => {
    vault = await startVault();
    for (const key of KEYS) await vault.createKey(key.name, key.type);
    signet = await startSignet(vault, KEYS.map((k) => ({ name: k.name, alg: k.alg, audiences: ['api', 'other'], allowed_typ: ['JWT', 'at+jwt'] })), {
      config: { refresh_interval: `${REFRESH_MS / 1000}s`, jwks: { max_age: '5s' }, clock_skew: '5s', default_key: 'es256' },
    });
    await signet.ready(30_000);
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  for (const key of KEYS) {
    test(`${key.alg} (${key.type})`, async () => {
      const signed = await postSign(signet, `/v1/sign/${key.name}`, { claims: { sub: 'user-1', aud: 'api', scope: 'read' }, ttl: '2m' });
      assert.equal(signed.status, 200, JSON.stringify(signed.body));
      const { token, kid, alg, key_version: version, expires_at: expiresAt } = signed.body;
      assert.equal(alg, key.alg);
      assert.equal(signed.body.key, key.name);
      assert.equal(version, 1);
      const header = decodeProtectedHeader(token);
      assert.deepEqual(header, { alg: key.alg, kid, typ: 'JWT' });
      const now = Math.floor(Date.now() / 1000);
      assert.ok(Math.abs(expiresAt - (now + 120)) <= 2, 'exp = now + ttl');

      // The kid names the version Vault signed with.
      const keys = (await signet.get('/v1/keys')).body.keys as Array<{ name: string; versions: Array<{ version: number; kid: string }> }>;
      const versions = keys.find((k) => k.name === key.name)!.versions;
      assert.equal(versions.find((v) => v.version === version)!.kid, kid);

      const [headerPart, payloadPart, signature] = token.split('.');
      const signingInput = `${headerPart}.${payloadPart}`;
      const jwks = (await signet.get('/.well-known/jwks.json')).body as { keys: JWK[] };
      if (key.alg.startsWith('HS')) {
        assert.ok(!jwks.keys.some((k) => k.kid === kid), 'HMAC keys never appear in the JWKS');
        const hmac = `vault:v${version}:${Buffer.from(signature!, 'base64url').toString('base64')}`;
        assert.equal(await vault.transitVerify(key.name, algSpec(key.alg).hash, signingInput, `hmac:${hmac}`), true);
      } else {
        // jose, with nothing but the JWKS.
        const verified = await jwtVerify(token, createLocalJWKSet(jwks), { algorithms: [key.alg], issuer: 'https://issuer.test', audience: 'api' });
        assert.equal(verified.payload.sub, 'user-1');
        assert.equal(verified.payload.scope, 'read');
        assert.equal(typeof verified.payload.jti, 'string');
        // Vault's own verify, with the JWS marshaling.
        const { hash, extra } = vaultVerifyParams(key.alg);
        assert.equal(await vault.transitVerify(key.name, hash, signingInput, `vault:v${version}:${signature}`, extra), true);
        // The JWK served is Vault's public key of that version.
        const served = jwks.keys.find((k) => k.kid === kid)!;
        assert.equal(served.alg, key.alg);
        assert.equal(served.use, 'sig');
        const vaultKey = (await vault.readKey(key.name)).keys as Record<string, { public_key: string }>;
        const pub = vaultKey[String(version)]!.public_key;
        const expected = key.type === 'ed25519'
          ? { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(pub, 'base64').toString('base64url') }
          : createPublicKey(pub).export({ format: 'jwk' });
        const { kid: _kid, alg: _alg, use: _use, ...material } = served;
        assert.deepEqual(material, expected);
      }

      const verified = await signet.post('/v1/verify', { token, audience: 'api' });
      assert.equal(verified.status, 200, JSON.stringify(verified.body));
      assert.equal(verified.body.valid, true);
      assert.equal(verified.body.key, key.name);
      assert.equal(verified.body.key_version, version);
      assert.equal(verified.body.kid, kid);
      assert.equal(verified.body.claims.sub, 'user-1');
      assert.equal(verified.body.claims.iss, 'https://issuer.test');

      // A flipped signature byte fails everywhere.
      const sigBytes = Buffer.from(signature!, 'base64url');
      sigBytes[sigBytes.length >> 1]! ^= 0x01;
      const tampered = `${signingInput}.${sigBytes.toString('base64url')}`;
      const refused = await signet.post('/v1/verify', { token: tampered });
      assert.equal(refused.status, 401);
      assert.deepEqual(refused.body, { valid: false, errors: ['signature: does not verify'] });
    });
  }

  test('POST /v1/sign uses the default key, and headers.typ is honoured', async () => {
    const signed = await postSign(signet, '/v1/sign', { claims: { sub: 'x', aud: 'api' }, headers: { typ: 'at+jwt' } });
    assert.equal(signed.status, 200);
    assert.equal(signed.body.key, 'es256');
    assert.equal(decodeProtectedHeader(signed.body.token).typ, 'at+jwt');
  });

  test('verification refuses the wrong audience, issuer, and an expired token', async () => {
    const { token } = (await postSign(signet, '/v1/sign/es256', { claims: { aud: 'api' } })).body;
    const wrongAud = await signet.post('/v1/verify', { token, audience: 'other' });
    assert.equal(wrongAud.status, 401);
    assert.deepEqual(wrongAud.body.errors, ['claim aud: does not include the expected audience']);
    const wrongIss = await signet.post('/v1/verify', { token, issuer: 'https://elsewhere.test' });
    assert.equal(wrongIss.status, 401);
    assert.deepEqual(wrongIss.body, { valid: false, errors: ['claim iss: does not match the expected issuer'] });
    // The right issuer and audience: the same token verifies, so the refusals above are about those claims alone.
    assert.equal((await signet.post('/v1/verify', { token, issuer: 'https://issuer.test', audience: 'api' })).status, 200);
    // Expired: Signet will not back-date a token (exp is its own claim), so Transit signs one directly with the
    // Ed25519 key, exp a minute ago (beyond the 5 s clock skew); the same token with a live exp verifies.
    const eddsaKid = ((await signet.get('/v1/keys')).body.keys as Array<{ name: string; signing_kid: string }>).find((k) => k.name === 'eddsa')!.signing_kid;
    const transitSigned = async (payload: Record<string, unknown>) => {
      const b64u = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const signingInput = `${b64u({ alg: 'EdDSA', kid: eddsaKid, typ: 'JWT' })}.${b64u(payload)}`;
      const answer = await vault.api('POST', 'transit/sign/eddsa', { input: Buffer.from(signingInput).toString('base64') });
      const signature = (answer.data as { signature: string }).signature.replace(/^vault:v\d+:/, '');
      return `${signingInput}.${Buffer.from(signature, 'base64').toString('base64url')}`;
    };
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: 'https://issuer.test', aud: 'api', sub: 'user-1', iat: now - 120, nbf: now - 120 };
    const live = await signet.post('/v1/verify', { token: await transitSigned({ ...claims, exp: now + 60 }), audience: 'api' });
    assert.equal(live.status, 200, JSON.stringify(live.body));
    const expired = await signet.post('/v1/verify', { token: await transitSigned({ ...claims, exp: now - 60 }), audience: 'api' });
    assert.equal(expired.status, 401);
    assert.deepEqual(expired.body, { valid: false, errors: ['claim exp: the token has expired'] });
  });

  test('JWKS and discovery: cache headers, ETag and 304', async () => {
    const first = await signet.get('/.well-known/jwks.json');
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('cache-control'), 'public, max-age=5');
    const etag = first.headers.get('etag')!;
    assert.match(etag, /^"[A-Za-z0-9_-]+"$/);
    const again = await signet.get('/v1/jwks', { 'if-none-match': etag });
    assert.equal(again.status, 304);
    const published = (first.body.keys as JWK[]).length;
    assert.equal(published, KEYS.filter((k) => !k.alg.startsWith('HS')).length);
    const discovery = await signet.get('/.well-known/openid-configuration');
    assert.equal(discovery.status, 200);
    assert.equal(discovery.body.issuer, 'https://issuer.test');
    assert.match(discovery.body.jwks_uri, /^http:\/\/127\.0\.0\.1:0\/\.well-known\/jwks\.json$|\/\.well-known\/jwks\.json$/);
    assert.deepEqual(new Set(discovery.body.id_token_signing_alg_values_supported), new Set(KEYS.filter((k) => !k.alg.startsWith('HS')).map((k) => k.alg)));
  });

  test('after transit rotate, the new kid is published within refresh_interval and old tokens still verify', async () => {
    const before = (await postSign(signet, '/v1/sign/es256', { claims: { sub: 'before', aud: 'api' } })).body;
    await vault.rotate('es256');
    // The clock starts when Vault has the new version (the rotate call has returned).
    const jwks = await withinOneRefresh('the new version in the JWKS', REFRESH_MS, REFRESH_MARGIN_MS, async () => {
      const body = (await signet.get('/.well-known/jwks.json')).body as { keys: JWK[] };
      const ours = body.keys.filter((k) => k.alg === 'ES256');
      return ours.length === 2 ? ours : undefined;
    });
    assert.ok(jwks.some((k) => k.kid === before.kid));
    const keys = (await signet.get('/v1/keys')).body.keys as Array<{ name: string; signing_version: number; versions: Array<{ version: number; state: string }> }>;
    const es = keys.find((k) => k.name === 'es256')!;
    // Published first; it signs only after publish_delay.
    assert.equal(es.signing_version, 1);
    assert.equal(es.versions.find((v) => v.version === 2)!.state, 'pending');
    const verified = await signet.post('/v1/verify', { token: before.token });
    assert.equal(verified.status, 200);
    assert.equal(verified.body.key_version, 1);
  });

  test('an unknown kid triggers an immediate refresh (a version another instance already signs with)', async () => {
    // This instance re-reads Vault only hourly.
    const slow = await startSignet(vault, [{ name: 'rs256', alg: 'RS256' }], { config: { refresh_interval: '1h' } });
    try {
      await slow.ready(10_000);
      await vault.rotate('rs256');
      await vault.configKey('rs256', { min_encryption_version: 2 });
      const fresh = await startSignet(vault, [{ name: 'rs256', alg: 'RS256' }]);
      try {
        await fresh.ready(10_000);
        const signed = (await postSign(fresh, '/v1/sign/rs256', { claims: {} })).body;
        assert.equal(signed.key_version, 2);
        const verified = await slow.post('/v1/verify', { token: signed.token });
        assert.equal(verified.status, 200, JSON.stringify(verified.body));
        assert.equal(verified.body.key_version, 2);
      } finally {
        await fresh.close();
      }
    } finally {
      await slow.close();
    }
  });
});
