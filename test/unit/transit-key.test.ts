import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { VaultResponseError } from '../../src/errors.ts';
import { computeSchedule } from '../../src/keys/schedule.ts';
import { parseTransitKey } from '../../src/keys/transit-key.ts';

const ED_PUB_1 = Buffer.alloc(32, 1).toString('base64');
const ED_PUB_2 = Buffer.from(Array.from({ length: 32 }, (_, i) => 250 - i)).toString('base64');
const EC_PEM = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
const RSA_PEM = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;

/** The fields every `GET transit/keys/:name` answer carries (Vault 1.21). */
function common(type: string, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    allow_plaintext_backup: false,
    auto_rotate_period: 0,
    deletion_allowed: false,
    derived: false,
    exportable: false,
    imported_key: false,
    latest_version: 1,
    min_available_version: 0,
    min_decryption_version: 1,
    min_encryption_version: 0,
    name: 'k',
    supports_decryption: false,
    supports_derivation: type === 'ed25519',
    supports_encryption: false,
    supports_signing: true,
    type,
    ...extra,
  };
}

function refused(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof VaultResponseError, `expected VaultResponseError, got ${String(error)}`);
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  });
}

describe('parseTransitKey: asymmetric keys', () => {
  test('ed25519: RFC 3339 creation times (nanoseconds) and raw standard base64 public keys', () => {
    const key = parseTransitKey('sig', common('ed25519', {
      latest_version: 2,
      auto_rotate_period: 2_592_000,
      keys: {
        '1': { certificate_chain: '', creation_time: '2024-11-24T07:00:00.123456789Z', name: 'ed25519', public_key: ED_PUB_1 },
        '2': { certificate_chain: '', creation_time: '2024-12-24T07:00:00.999999999Z', name: 'ed25519', public_key: ED_PUB_2 },
      },
    }));
    assert.equal(key.name, 'sig');
    assert.equal(key.type, 'ed25519');
    assert.equal(key.symmetric, false);
    assert.equal(key.derived, false);
    assert.equal(key.exportable, false);
    assert.equal(key.latestVersion, 2);
    assert.equal(key.minEncryptionVersion, 0);
    assert.equal(key.minDecryptionVersion, 1);
    assert.equal(key.autoRotatePeriod, 2_592_000);
    assert.deepEqual(key.versions, [
      // Millisecond precision: rounding down to the second would let a version sign before created + delay.
      { version: 1, createdAt: Date.UTC(2024, 10, 24, 7, 0, 0, 123) / 1000, publicKey: ED_PUB_1 },
      { version: 2, createdAt: Date.UTC(2024, 11, 24, 7, 0, 0, 999) / 1000, publicKey: ED_PUB_2 },
    ]);
  });

  test('creation times with a zone offset are converted to UTC seconds since the epoch', () => {
    const key = parseTransitKey('k', common('ecdsa-p256', {
      keys: { '1': { creation_time: '2024-11-24T08:00:00.75+01:00', name: 'P-256', public_key: EC_PEM } },
    }));
    assert.equal(key.versions[0]!.createdAt, Date.UTC(2024, 10, 24, 7, 0, 0, 750) / 1000);
  });

  test('a version never counts as created before Vault says it was', () => {
    const created = '2025-03-01T12:00:00.600Z';
    const key = parseTransitKey('k', common('ed25519', { keys: { '1': { creation_time: created, public_key: ED_PUB_1 } } }));
    assert.ok(key.versions[0]!.createdAt * 1000 >= Date.parse(created));
  });

  test('ecdsa and rsa: PEM public keys are kept as they come', () => {
    const ec = parseTransitKey('ec', common('ecdsa-p256', { keys: { '1': { creation_time: '2025-01-01T00:00:00Z', name: 'P-256', public_key: EC_PEM } } }));
    assert.equal(ec.versions[0]!.publicKey, EC_PEM);
    const rsa = parseTransitKey('rsa', common('rsa-2048', { keys: { '1': { creation_time: '2025-01-01T00:00:00Z', name: 'rsa-2048', public_key: RSA_PEM } } }));
    assert.equal(rsa.type, 'rsa-2048');
    assert.equal(rsa.versions[0]!.publicKey, RSA_PEM);
    assert.equal(rsa.versions[0]!.createdAt, Date.UTC(2025, 0, 1) / 1000);
  });

  test('versions are ordered numerically, not as strings (v10 after v9)', () => {
    const keys = Object.fromEntries([10, 9, 1, 2].map((v) => [String(v), { creation_time: `2025-01-${String(v).padStart(2, '0')}T00:00:00Z`, public_key: ED_PUB_1 }]));
    const key = parseTransitKey('k', common('ed25519', { latest_version: 10, min_decryption_version: 1, keys }));
    assert.deepEqual(key.versions.map((v) => v.version), [1, 2, 9, 10]);
  });

  test('Vault lists only versions from min_decryption_version on; min versions are carried over', () => {
    const key = parseTransitKey('k', common('ecdsa-p384', {
      latest_version: 4, min_decryption_version: 3, min_encryption_version: 4,
      keys: {
        '3': { creation_time: '2025-01-03T00:00:00Z', public_key: EC_PEM },
        '4': { creation_time: '2025-01-04T00:00:00Z', public_key: EC_PEM },
      },
    }));
    assert.deepEqual(key.versions.map((v) => v.version), [3, 4]);
    assert.equal(key.minDecryptionVersion, 3);
    assert.equal(key.minEncryptionVersion, 4);
    assert.equal(key.latestVersion, 4);
  });

  test('derived and exportable flags are reported', () => {
    const key = parseTransitKey('k', common('ed25519', { derived: true, exportable: true, keys: { '1': { creation_time: '2025-01-01T00:00:00Z', public_key: ED_PUB_1 } } }));
    assert.equal(key.derived, true);
    assert.equal(key.exportable, true);
  });

  test('an empty public key is reported as missing, not as an empty key', () => {
    const key = parseTransitKey('k', common('ed25519', { keys: { '1': { creation_time: '2025-01-01T00:00:00Z', public_key: '' } } }));
    assert.equal(key.versions[0]!.publicKey, undefined);
  });

  test('a version without a valid creation_time is refused, naming the key and the version', () => {
    refused(() => parseTransitKey('sig', common('ed25519', { keys: { '1': { public_key: ED_PUB_1 } } })), /"sig"/, /version 1/, /creation_time/);
    refused(() => parseTransitKey('sig', common('ed25519', { keys: { '2': { creation_time: 'yesterday', public_key: ED_PUB_1 } } })), /version 2/);
  });

  test('the parsed key feeds the schedule directly', () => {
    const key = parseTransitKey('k', common('ed25519', {
      latest_version: 2,
      keys: {
        '1': { creation_time: '2025-01-01T00:00:00Z', public_key: ED_PUB_1 },
        '2': { creation_time: '2025-01-02T00:00:00Z', public_key: ED_PUB_2 },
      },
    }));
    const created2 = Date.UTC(2025, 0, 2) / 1000;
    const config = { publishDelay: 600, maxTtl: 3600, clockSkew: 60, refreshInterval: 30 };
    assert.equal(computeSchedule(key, config, created2 + 599).signingVersion, 1);
    assert.equal(computeSchedule(key, config, created2 + 600).signingVersion, 2);
  });
});

describe('parseTransitKey: symmetric keys', () => {
  for (const type of ['aes256-gcm96', 'aes128-gcm96', 'chacha20-poly1305']) {
    test(`${type}: unix-timestamp creation times, nothing public`, () => {
      const key = parseTransitKey('h', common(type, {
        latest_version: 2, supports_encryption: true, supports_decryption: true,
        keys: { '1': 1_732_431_600, '2': 1_732_435_200 },
      }));
      assert.equal(key.type, type);
      assert.equal(key.symmetric, true);
      assert.deepEqual(key.versions, [{ version: 1, createdAt: 1_732_431_600 }, { version: 2, createdAt: 1_732_435_200 }]);
      assert.ok(key.versions.every((v) => v.publicKey === undefined));
    });
  }

  test('hmac (Vault 1.21 has no `keys` field): versions are min_decryption_version..latest_version', () => {
    const data = common('hmac', { latest_version: 5, min_decryption_version: 3, supports_signing: false });
    assert.equal('keys' in data, false);
    const key = parseTransitKey('mac', data);
    assert.equal(key.type, 'hmac');
    assert.equal(key.symmetric, true);
    assert.deepEqual(key.versions.map((v) => v.version), [3, 4, 5]);
    assert.ok(key.versions.every((v) => v.publicKey === undefined));
    assert.equal(key.latestVersion, 5);
    assert.equal(key.minDecryptionVersion, 3);
  });

  test('a fresh hmac key has exactly version 1, which signs at once', () => {
    const key = parseTransitKey('mac', common('hmac', { latest_version: 1, min_decryption_version: 1 }));
    assert.deepEqual(key.versions.map((v) => v.version), [1]);
    const s = computeSchedule(key, { publishDelay: 600, maxTtl: 3600, clockSkew: 60, refreshInterval: 30 }, 1_732_431_600);
    assert.equal(s.signingVersion, 1);
  });

  test('a rotated hmac key signs with its latest version at once', () => {
    const key = parseTransitKey('mac', common('hmac', { latest_version: 3, min_decryption_version: 1 }));
    const s = computeSchedule(key, { publishDelay: 600, maxTtl: 3600, clockSkew: 60, refreshInterval: 30 }, 1_732_431_600);
    assert.equal(s.signingVersion, 3);
    assert.deepEqual(s.versions.map((v) => v.state), ['verify-only', 'verify-only', 'active']);
  });
});

describe('parseTransitKey refusals', () => {
  test('no data', () => {
    refused(() => parseTransitKey('k', undefined), /no data/, /"k"/);
  });

  for (const type of ['managed_key', 'aes128-cmac', 'aes256-cmac', 'ml-dsa', 'slh-dsa', 'rsa-1024', 'undefined']) {
    test(`type ${type} cannot sign JWTs`, () => {
      refused(() => parseTransitKey('k', common(type, { keys: { '1': 1_732_431_600 } })), /"k"/, new RegExp(type), /cannot sign JWTs/);
    });
  }

  test('a missing type is refused', () => {
    const data = common('ed25519', {});
    delete data.type;
    refused(() => parseTransitKey('k', data), /cannot sign JWTs/);
  });

  test('an asymmetric key without versions is refused', () => {
    refused(() => parseTransitKey('k', common('ed25519', {})), /no versions/, /"k"/);
  });
});
