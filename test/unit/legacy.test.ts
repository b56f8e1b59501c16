// Old tokens of an imported key: when the alias ends (a date, or a duration from the import as Vault records it),
// the configuration rules (legacy_until required, one accept_missing_kid, unique kids, static_keys), and the keyring
// publishing the imported version under both kids and dropping the alias at legacy_until.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { buildConfig } from '../../src/config.ts';
import { ConfigError } from '../../src/errors.ts';
import { Keyring, type LegacyChange } from '../../src/keys/keyring.ts';
import { aliasEnd, aliasState, parseDate, parseLegacyUntil } from '../../src/keys/legacy.ts';
import { buildMaterial } from '../../src/keys/material.ts';
import { parseStaticKey } from '../../src/keys/static-keys.ts';
import { parseTransitKey } from '../../src/keys/transit-key.ts';
import { parseDuration } from '../../src/duration.ts';

const ENV = { VAULT_TOKEN: 'hvs.test' };
const DAY = 86400;

function refused(fn: () => unknown, field: string, pattern?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    assert.equal(error.field, field);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

describe('legacy_until', () => {
  test('dates (a bare date is its UTC midnight) and durations counted from the import', () => {
    assert.deepEqual(parseLegacyUntil('2026-12-31', parseDuration), { at: Date.UTC(2026, 11, 31) / 1000 });
    assert.deepEqual(parseLegacyUntil('2026-12-31T12:30:00Z', parseDuration), { at: Date.UTC(2026, 11, 31, 12, 30) / 1000 });
    assert.deepEqual(parseLegacyUntil('2026-12-31T12:30:00+02:00', parseDuration), { at: Date.UTC(2026, 11, 31, 10, 30) / 1000 });
    assert.deepEqual(parseLegacyUntil('30d', parseDuration), { afterImport: 30 * DAY });
    assert.deepEqual(parseLegacyUntil(new Date(Date.UTC(2027, 0, 1)), parseDuration), { at: Date.UTC(2027, 0, 1) / 1000 });
    for (const bad of ['2026-02-31', '2026-13-01', 'tomorrow', '0s', '', '2026-12-31T12:30', true]) {
      assert.equal(parseLegacyUntil(bad, parseDuration), undefined, String(bad));
    }
    assert.equal(parseDate('2028-02-29'), Date.UTC(2028, 1, 29) / 1000);
  });

  test('a duration ends at the imported version\'s creation time plus the duration; it needs that time', () => {
    assert.equal(aliasEnd({ afterImport: DAY }, 1_000_000), 1_000_000 + DAY);
    assert.equal(aliasEnd({ at: 5 }, 0), 5);
    const error = aliasEnd({ afterImport: DAY }, 0);
    assert.ok(typeof error !== 'number' && /set legacy_until to a date/.test(error.error));
  });

  test('the alias is active before its end while the version is published, expired at its end, gone with a retired version', () => {
    const legacy = { kid: 'old', acceptMissingKid: false, until: { afterImport: 100 } };
    assert.deepEqual(aliasState(legacy, { version: 1, createdAt: 1000, published: true }, 1099), { state: 'active', until: 1100 });
    assert.deepEqual(aliasState(legacy, { version: 1, createdAt: 1000, published: true }, 1100), { state: 'expired', until: 1100 });
    assert.deepEqual(aliasState(legacy, { version: 1, createdAt: 1000, published: false }, 1050), { state: 'version-retired', until: 1100 });
    assert.equal(aliasState(legacy, { version: 1, createdAt: 0, published: true }, 1050).state, 'error');
  });
});

describe('configuration', () => {
  const key = (extra: Record<string, unknown>, name = 'app') => ({ name, issuer: 'https://i', ...extra });

  test('legacy settings parse into the key', () => {
    const config = buildConfig({ keys: [key({ legacy_kid: 'old-1', accept_missing_kid: true, legacy_until: '14d' })] }, ENV);
    assert.deepEqual(config.keys[0]!.legacy, { kid: 'old-1', acceptMissingKid: true, until: { afterImport: 14 * DAY } });
    assert.equal(buildConfig({ keys: [key({})] }, ENV).keys[0]!.legacy, undefined);
  });

  test('each refusal names the field and says what to do', () => {
    refused(() => buildConfig({ keys: [key({ legacy_kid: 'old' })] }, ENV), 'keys[0].legacy_until', /is required with legacy_kid or accept_missing_kid/);
    refused(() => buildConfig({ keys: [key({ legacy_until: '2026-12-31' })] }, ENV), 'keys[0].legacy_until', /only with legacy_kid or accept_missing_kid/);
    refused(() => buildConfig({ keys: [key({ legacy_kid: 'old', legacy_until: 'soon' })] }, ENV), 'keys[0].legacy_until', /a date .* or a duration/);
    refused(() => buildConfig({ keys: [key({ accept_missing_kid: 'yes', legacy_until: '1d' })] }, ENV), 'keys[0].accept_missing_kid', /true or false/);
    refused(() => buildConfig({
      keys: [key({ accept_missing_kid: true, legacy_until: '1d' }), key({ accept_missing_kid: true, legacy_until: '1d' }, 'b')],
    }, ENV), 'keys[1].accept_missing_kid', /already set on key "app"/);
    refused(() => buildConfig({
      keys: [key({ legacy_kid: 'k', legacy_until: '1d' }), key({ legacy_kid: 'k', legacy_until: '1d' }, 'b')],
    }, ENV), 'keys[1].legacy_kid', /already claimed by keys\[0\]\.legacy_kid/);
  });

  test('static_keys: name, file, issuer and until required; until a date; names and kids unique', () => {
    const entry = { name: 'old', file: '/k.pem', kid: 'k1', issuer: 'https://i', until: '2027-01-01' };
    const config = buildConfig({ keys: [key({})], static_keys: [entry] }, ENV);
    assert.deepEqual(config.staticKeys, [{ name: 'old', file: '/k.pem', kid: 'k1', alg: undefined, issuer: 'https://i', until: Date.UTC(2027, 0, 1) / 1000 }]);
    assert.deepEqual(buildConfig({ keys: [key({})] }, ENV).staticKeys, []);
    refused(() => buildConfig({ keys: [key({})], static_keys: [{ ...entry, until: '30d' }] }, ENV), 'static_keys[0].until', /is required: a date/);
    refused(() => buildConfig({ keys: [key({})], static_keys: [{ ...entry, name: 'app' }] }, ENV), 'static_keys[0].name', /already the name of a key/);
    refused(() => buildConfig({ keys: [key({})], static_keys: [{ ...entry, issuer: undefined }] }, ENV), 'static_keys[0].issuer', /is required/);
    refused(() => buildConfig({ keys: [key({})], static_keys: [{ ...entry, extra: 1 }] }, ENV), 'static_keys[0].extra', /unknown field/);
    refused(() => buildConfig({ keys: [key({ legacy_kid: 'k1', legacy_until: '1d' })], static_keys: [entry] }, ENV), 'static_keys[0].kid', /already claimed/);
  });
});

describe('static keys', () => {
  const entry = { name: 'old', file: '/k', issuer: 'https://i', until: 2e9 };
  test('PEM or JWK; kid from the entry or the JWK; alg from the entry, the JWK or the curve', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const fromPem = parseStaticKey(ec.publicKey.export({ format: 'pem', type: 'spki' }) as string, { ...entry, kid: 'k1' }, 'static_keys[0]');
    assert.equal(fromPem.alg, 'ES384');
    assert.deepEqual(fromPem.jwk, { ...ec.publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES384', use: 'sig' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = JSON.stringify({ ...rsa.publicKey.export({ format: 'jwk' }), kid: 'r1', alg: 'PS256' });
    const fromJwk = parseStaticKey(jwk, entry, 'static_keys[0]');
    assert.equal(fromJwk.kid, 'r1');
    assert.equal(fromJwk.alg, 'PS256');
  });

  test('refusals name the field: private keys, no kid, RSA without alg, an alg that does not fit, not a key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pub = rsa.publicKey.export({ format: 'pem', type: 'spki' }) as string;
    refused(() => parseStaticKey(rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, entry, 'static_keys[0]'), 'static_keys[0].file', /private key/);
    refused(() => parseStaticKey(JSON.stringify(rsa.privateKey.export({ format: 'jwk' })), entry, 'static_keys[0]'), 'static_keys[0].file', /private or secret/);
    refused(() => parseStaticKey(pub, entry, 'static_keys[0]'), 'static_keys[0].kid', /is required/);
    refused(() => parseStaticKey(pub, { ...entry, kid: 'k' }, 'static_keys[0]'), 'static_keys[0].alg', /required for an RSA key/);
    refused(() => parseStaticKey(pub, { ...entry, kid: 'k', alg: 'ES256' }, 'static_keys[0]'), 'static_keys[0].alg', /does not fit/);
    refused(() => parseStaticKey(pub, { ...entry, kid: 'k', alg: 'HS256' }, 'static_keys[0]'), 'static_keys[0].alg', /not an asymmetric/);
    refused(() => parseStaticKey('nonsense', { ...entry, kid: 'k' }, 'static_keys[0]'), 'static_keys[0].file', /not a public key/);
  });
});

describe('keyring: the alias of an imported version', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicPem = ec.publicKey.export({ format: 'pem', type: 'spki' }) as string;
  const created = 1_700_000_000;

  async function keyring(legacy: Record<string, unknown>, imported = true, changes: LegacyChange[] = []) {
    const config = buildConfig({ keys: [{ name: 'app', issuer: 'https://i', alg: 'ES256', ...legacy }] }, ENV);
    const transit = parseTransitKey('app', {
      type: 'ecdsa-p256', latest_version: 1, min_decryption_version: 1, min_encryption_version: 0, imported_key: imported,
      keys: { '1': { creation_time: new Date(created * 1000).toISOString(), public_key: publicPem } },
    });
    const material = await buildMaterial('app', 'ecdsa-p256', 'ES256', transit.versions[0]!);
    const ring = new Keyring({ clockSkew: 60, refreshInterval: 30 }, () => {}, () => {}, (c) => changes.push(c));
    ring.update({ config: config.keys[0]!, alg: 'ES256', transit, materials: new Map([[1, material]]), loadedAt: Date.now() });
    return { ring, kid: material.kid };
  }

  test('published under both kids, resolvable by the legacy kid and with no kid, until legacy_until; then gone, reported once', async () => {
    const changes: LegacyChange[] = [];
    const { ring, kid } = await keyring({ legacy_kid: 'old-kid', accept_missing_kid: true, legacy_until: '1d' }, true, changes);
    const before = created + DAY - 1;
    const jwks = JSON.parse(ring.jwks(before).body) as { keys: Array<{ kid: string; x: string }> };
    assert.deepEqual(jwks.keys.map((k) => k.kid), [kid, 'old-kid']);
    assert.equal(jwks.keys[0]!.x, jwks.keys[1]!.x, 'the same key material under both kids');
    assert.equal(ring.resolve('old-kid', before)?.via, 'legacy_kid');
    assert.equal(ring.resolve('old-kid', before)?.version, 1);
    assert.equal(ring.resolve(undefined, before)?.via, 'missing_kid');
    assert.equal(ring.resolve(kid, before)?.via, 'kid');
    assert.deepEqual(changes.map((c) => [c.kind, c.from, c.to]), [['legacy_kid', 'new', 'active'], ['missing_kid', 'new', 'active']]);

    const after = created + DAY;
    assert.deepEqual((JSON.parse(ring.jwks(after).body) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid), [kid]);
    assert.equal(ring.resolve('old-kid', after), undefined);
    assert.equal(ring.resolve(undefined, after), undefined);
    assert.equal(ring.resolve(kid, after)?.via, 'kid', 'the version itself lives on under Signet\'s kid');
    assert.equal(ring.view('app', after)?.legacy?.alias.state, 'expired');
    assert.deepEqual(changes.slice(2).map((c) => [c.kind, c.from, c.to]), [['legacy_kid', 'active', 'expired'], ['missing_kid', 'active', 'expired']]);
    ring.jwks(after + 10);
    assert.equal(changes.length, 4, 'reported once');
  });

  test('a legacy kid that is Signet\'s own kid (an RFC 7638 thumbprint) is published once', async () => {
    const thumbprint = await calculateJwkThumbprint(ec.publicKey.export({ format: 'jwk' }) as JWK, 'sha256');
    const { ring, kid } = await keyring({ legacy_kid: thumbprint, legacy_until: '1d' });
    assert.equal(kid, thumbprint);
    assert.deepEqual((JSON.parse(ring.jwks(created + 10).body) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid), [kid]);
  });

  test('a key that was not imported gets no alias', async () => {
    const { ring } = await keyring({ legacy_kid: 'old-kid', legacy_until: '1d' }, false);
    assert.equal(ring.resolve('old-kid', created + 10), undefined);
    assert.equal(ring.view('app', created + 10)?.legacy?.alias.state, 'error');
  });

  test('static keys: published and resolvable until their date', () => {
    const ring = new Keyring({ clockSkew: 60, refreshInterval: 30 });
    ring.setStaticKeys([parseStaticKey(publicPem, { name: 'old', file: '/k', kid: 's1', issuer: 'https://o', until: created }, 'static_keys[0]')]);
    assert.equal(ring.resolve('s1', created - 1)?.via, 'static');
    assert.equal(ring.resolve('s1', created - 1)?.issuer, 'https://o');
    assert.deepEqual((JSON.parse(ring.jwks(created - 1).body) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid), ['s1']);
    assert.equal(ring.resolve('s1', created), undefined);
    assert.equal((JSON.parse(ring.jwks(created).body) as { keys: unknown[] }).keys.length, 0);
  });
});
