// The ExternalJWTSigner contract's pure parts (src/kubernetes/contract.ts), the gRPC status mapping, and the
// `kubernetes` configuration block. The whole path against a real kube-apiserver is
// test/integration/kubernetes-signer.test.ts.

import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { join } from 'node:path';
import { buildConfig, loadConfig } from '../../src/config.ts';
import { InvalidRequestError, VaultItemRefusedError, VaultUnavailableError, VersionBelowMinimumError } from '../../src/errors.ts';
import { algSpec } from '../../src/jwt/algorithms.ts';
import type { KeyView, VersionView } from '../../src/keys/keyring.ts';
import type { VersionState } from '../../src/keys/schedule.ts';
import { checkClaims, KeySetClock, publishedKeys, refreshHint, REFRESH_HINT_FLOOR_SECONDS, staticPublishedKeys, timestamp } from '../../src/kubernetes/contract.ts';
import { KUBERNETES_ALGS } from '../../src/kubernetes/config.ts';
import { grpcStatusOf } from '../../src/kubernetes/server.ts';
import { policyRules, ROOT } from '../harness/ops.ts';

const NOW = 1_800_000_000;
const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

test('checkClaims: base64url JSON objects with an exp within max_ttl (+ skew) pass, unchanged', () => {
  checkClaims(b64({ iss: 'https://k8s', sub: 'system:serviceaccount:a:b', exp: NOW + 600 }), NOW, 600, 60);
  checkClaims(b64({ exp: NOW + 660 }), NOW, 600, 60);
});

test('checkClaims: refuses garbage with InvalidRequestError, naming the rule and never the value', () => {
  const refused: Array<[unknown, RegExp]> = [
    [undefined, /non-empty base64url/],
    ['', /non-empty base64url/],
    [`${b64({ exp: NOW })}=`, /not unpadded base64url/],
    ['eyJ+', /not unpadded base64url/],
    ['eyJhIjoxfQ.x', /not unpadded base64url/],
    // "e30" is {} (no trailing bits); "e31" decodes to the same bytes: not canonical.
    ['e31', /not canonical/],
    [b64('not json'), /not UTF-8 JSON/],
    [Buffer.from([0x22, 0xff, 0x22]).toString('base64url'), /not UTF-8 JSON/],
    [b64([1, 2]), /not a JSON object/],
    [b64('null'), /not a JSON object/],
    [b64({ sub: 'x' }), /exp is missing/],
    [b64({ exp: '1' }), /exp is missing or not a number/],
    [b64({ exp: NOW + 661, secret: 'do-not-echo' }), /more than the key's max_ttl \(600s\)/],
    ['A'.repeat(40_000), /longer than/],
  ];
  for (const [claims, message] of refused) {
    assert.throws(() => checkClaims(claims, NOW, 600, 60), (error: Error) => {
      assert.ok(error instanceof InvalidRequestError, String(claims).slice(0, 20));
      assert.match(error.message, message);
      assert.doesNotMatch(error.message, /do-not-echo/);
      return true;
    });
  }
});

function version(v: number, state: VersionState, extra: Partial<VersionView> = {}): VersionView {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { version: v, kid: `kid-${v}`, createdAt: NOW - 1000 + v, state, publicKey, ...extra };
}

function view(versions: VersionView[], extra: Partial<KeyView> = {}): KeyView {
  return {
    name: 'k8s', config: {} as KeyView['config'], type: 'ecdsa-p256', alg: 'ES256', spec: algSpec('ES256'),
    signing: versions.find((v) => v.state === 'active')!, versions, latestVersion: versions.length,
    minEncryptionVersion: 0, minDecryptionVersion: 1, autoRotatePeriod: 0, loadedAt: NOW * 1000, ...extra,
  };
}

test('publishedKeys: every published version (pending, active, verify-only) as PKIX DER, in version order; never a retired one', () => {
  const versions = [version(1, 'retired'), version(2, 'verify-only'), version(3, 'active'), version(4, 'pending')];
  const keys = publishedKeys(view(versions));
  assert.deepEqual(keys.map((k) => k.keyId), ['kid-2', 'kid-3', 'kid-4']);
  for (const [i, key] of keys.entries()) {
    assert.equal(key.excludeFromOidcDiscovery, false);
    const parsed = createPublicKey({ key: key.key, format: 'der', type: 'spki' });
    assert.ok(parsed.equals(versions[i + 1]!.publicKey!));
  }
});

test('refreshHint: at most the ceiling and the time to the next state change, at least the floor', () => {
  const versions = [version(1, 'active')];
  assert.equal(refreshHint(view(versions), NOW, 300), 300);
  assert.equal(refreshHint(view(versions, { nextChangeAt: NOW + 42.2 }), NOW, 300), 43);
  assert.equal(refreshHint(view(versions, { nextChangeAt: NOW + 4000 }), NOW, 300), 300);
  assert.equal(refreshHint(view(versions, { nextChangeAt: NOW + 0.2 }), NOW, 300), REFRESH_HINT_FLOOR_SECONDS);
  assert.ok(REFRESH_HINT_FLOOR_SECONDS >= 1, 'kube-apiserver exits on a hint <= 0');
});

test('KeySetClock: the read time first; a scheduled state change at its exact time; a new kid at its read; always increasing', () => {
  const clock = new KeySetClock();
  const v1 = version(1, 'active');
  const first = view([v1], { loadedAt: (NOW - 100) * 1000 });
  assert.equal(clock.observe(first, NOW), NOW - 100);
  // Nothing changed (a later read of the same state): same timestamp.
  assert.equal(clock.observe(view([v1], { loadedAt: NOW * 1000 }), NOW + 1), NOW - 100);
  // A rotation read from Vault: a new kid, dated when Signet read it.
  const v2 = version(2, 'pending');
  const rotated = view([v1, v2], { loadedAt: (NOW + 5) * 1000, nextChangeAt: NOW + 65 });
  assert.equal(clock.observe(rotated, NOW + 6), NOW + 5);
  // The schedule switches v2 to active at NOW + 65 (same kids, new states): dated exactly then.
  const switched = view([{ ...v1, state: 'verify-only' }, { ...v2, state: 'active' }], { loadedAt: (NOW + 66) * 1000 });
  assert.equal(clock.observe(switched, NOW + 70), NOW + 65);
  // Never backwards, even for a change dated before the last one.
  const revoked = view([{ ...v2, state: 'active' }], { loadedAt: (NOW + 1) * 1000 });
  assert.ok(clock.observe(revoked, NOW + 71) > NOW + 65);
  assert.deepEqual(timestamp(NOW + 0.25), { seconds: NOW, nanos: 250_000_000 });
});

test('gRPC status: UNAVAILABLE for Vault away and the breaker, RESOURCE_EXHAUSTED for overload, INVALID_ARGUMENT for bad claims', () => {
  assert.equal(grpcStatusOf(new VaultUnavailableError('sign', 'x', 1, 'circuit_open')), status.UNAVAILABLE);
  assert.equal(grpcStatusOf(new VaultUnavailableError('sign', 'x', 1, 'unreachable')), status.UNAVAILABLE);
  assert.equal(grpcStatusOf(new VaultUnavailableError('sign', 'x', 1, 'not_loaded')), status.UNAVAILABLE);
  assert.equal(grpcStatusOf(new VaultUnavailableError('sign', 'x', 1, 'overloaded')), status.RESOURCE_EXHAUSTED);
  assert.equal(grpcStatusOf(new VersionBelowMinimumError('x')), status.UNAVAILABLE);
  assert.equal(grpcStatusOf(new InvalidRequestError('claims: x')), status.INVALID_ARGUMENT);
  assert.equal(grpcStatusOf(new VaultItemRefusedError('x')), status.INTERNAL);
  assert.equal(grpcStatusOf(new Error('bug')), status.INTERNAL);
});

const KEY = { name: 'k8s', issuer: 'https://kubernetes.default.svc', max_ttl: '1h' };
const ENV = { VAULT_TOKEN: 't' };
const cluster = (extra: Record<string, unknown> = {}) => ({ name: 'prod', socket: '/run/signet/k8s.sock', key: 'k8s', ...extra });

test('config: kubernetes clusters with their socket (default mode 0600), group and key', () => {
  const config = buildConfig({ keys: [KEY], kubernetes: [cluster({ socket_group: 'kube' })] }, ENV);
  assert.deepEqual(config.kubernetes, [{ name: 'prod', socket: '/run/signet/k8s.sock', socketMode: 0o600, socketGroup: 'kube', key: 'k8s' }]);
  assert.equal(buildConfig({ keys: [KEY], kubernetes: [cluster({ socket_mode: '0660' })] }, ENV).kubernetes[0]!.socketMode, 0o660);
  assert.deepEqual(buildConfig({ keys: [KEY] }, ENV).kubernetes, []);
});

test('config: every refusal names the field', () => {
  const refused: Array<[Record<string, unknown>, RegExp]> = [
    [{ keys: [KEY], kubernetes: {} }, /configuration: kubernetes: must be a list/],
    [{ keys: [KEY], kubernetes: [cluster({ extra: 1 })] }, /kubernetes\[0\]\.extra: unknown field/],
    [{ keys: [KEY], kubernetes: [cluster({ socket: 'k8s.sock' })] }, /kubernetes\[0\]\.socket: must be an absolute path/],
    [{ keys: [KEY], kubernetes: [cluster({ socket_mode: '0666' })] }, /kubernetes\[0\]\.socket_mode: 0666 lets other local users connect/],
    [{ keys: [KEY], kubernetes: [cluster({ socket_mode: 600 })] }, /kubernetes\[0\]\.socket_mode: must be an octal string/],
    [{ keys: [KEY], kubernetes: [cluster({ key: 'other' })] }, /kubernetes\[0\]\.key: "other" is not one of the configured keys/],
    [{ keys: [{ ...KEY, max_ttl: '599s', default_ttl: '5m' }], kubernetes: [cluster()] }, /keys\[0\]\.max_ttl: must be at least 600s/],
    [{ keys: [{ ...KEY, alg: 'PS256' }], kubernetes: [cluster()] }, /keys\[0\]\.alg: kube-apiserver accepts only RS256, ES256, ES384, ES512/],
    [{ keys: [KEY], kubernetes: [cluster(), cluster({ name: 'b', socket: '/run/b.sock' })] }, /kubernetes\[1\]\.key: key "k8s" already signs for another cluster/],
    [{ keys: [KEY], kubernetes: [cluster(), cluster({ key: 'k8s' })] }, /kubernetes\[1\]\.name: cluster "prod" is configured twice/],
    [{ listen: 'unix:/run/signet/k8s.sock', keys: [KEY], kubernetes: [cluster()] }, /kubernetes\[0\]\.socket: must differ from listen/],
  ];
  for (const [doc, message] of refused) assert.throws(() => buildConfig(doc, ENV), message);
});

test('deploy/kubernetes/control-plane: signet.yaml loads; its policy grants reading and signing with exactly its cluster key', () => {
  const dir = join(ROOT, 'deploy', 'kubernetes', 'control-plane');
  const config = loadConfig(join(dir, 'signet.yaml'), {});
  assert.equal(config.vault.auth.method, 'approle');
  const [cluster] = config.kubernetes;
  assert.ok(cluster);
  assert.equal(cluster.socketMode, 0o600);
  assert.equal(cluster.socket, '/var/run/signet-kube/signer.sock');
  const key = config.keys.find((k) => k.name === cluster.key)!;
  assert.equal(key.alg, 'ES256');
  const rules = policyRules(readFileSync(join(dir, 'vault-policy.hcl'), 'utf8'));
  assert.deepEqual(Object.fromEntries(rules), {
    [`transit/keys/${key.name}`]: ['read'],
    [`transit/sign/${key.name}/sha2-256`]: ['update'],
    'auth/token/lookup-self': ['read'],
    'auth/token/renew-self': ['update'],
  });
  const pod = readFileSync(join(dir, 'signet-static-pod.yaml'), 'utf8');
  assert.match(pod, /--config", "\/etc\/signet-kube\/signet\.yaml"/);
  assert.match(pod, /path: \/var\/run\/signet-kube\n/);
});

test('FetchKeys also serves the static_keys still published whose alg kube-apiserver accepts (the old key file during a move)', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
  const ed = generateKeyPairSync('ed25519').publicKey;
  const keys = staticPublishedKeys([
    { kid: 'old-sa-key', alg: 'ES256', publicKey: ec, active: true },
    { kid: 'expired', alg: 'ES256', publicKey: ec, active: false },
    { kid: 'eddsa', alg: 'EdDSA', publicKey: ed, active: true },
  ], KUBERNETES_ALGS);
  assert.deepEqual(keys.map((k) => k.keyId), ['old-sa-key']);
  assert.deepEqual(keys[0]!.key, ec.export({ type: 'spki', format: 'der' }));
  assert.equal(keys[0]!.excludeFromOidcDiscovery, false);
});
