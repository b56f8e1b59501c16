// Signet as kube-apiserver's external service-account token signer (issue 12), against a real Vault, a real
// etcd and a real kube-apiserver v1.37.2 calling Signet's ExternalJWTSigner socket: TokenRequest → a token with
// the active version's kid that TokenReview authenticates and that verifies with Signet's JWKS and with the API
// server's /openid/v1/jwks; a rotation in Vault under a stream of TokenRequests with no failure and the new key
// in the API server's JWKS before its first token; revocation; a paused Vault; and every manifest of
// deploy/kubernetes/ through the API server's strict dry run. Then serve() on its own with a gRPC client: v1 and
// v1alpha1, the socket's mode, start-up refusals, the control-plane Vault policy, overload (RESOURCE_EXHAUSTED),
// a corrupted signature caught before it is answered, and the audit record of each Sign. Short durations keep it fast; the rules are the same.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, relative } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { parseAllDocuments } from 'yaml';
import { credentials, makeGenericClientConstructor, status, type ServiceError } from '@grpc/grpc-js';
import { buildConfig } from '../../src/config.ts';
import { serviceDefinitions, startKubernetesSigners, type KubernetesSigner } from '../../src/kubernetes/server.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { serve } from '../../src/server.ts';
import {
  clusterDir, createServiceAccount, ISSUER, startEtcd, startKubeApiserver, type Etcd, type KubeApiserver,
} from '../harness/kubernetes.ts';
import { ROOT, vaultRaw } from '../harness/ops.ts';
import { eventually, startSignet, type TestSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

// publish_delay must exceed jwks.max_age + refresh_interval + clock_skew (4 s); FetchKeys hints ≤ max_age (2 s).
const TIMING = { refresh_interval: '1s', jwks: { max_age: '2s' }, clock_skew: '1s' };
const KEY = { name: 'k8s', issuer: ISSUER, publish_delay: '6s', max_ttl: '600s', default_ttl: '600s' };
const SIGN_TIMEOUT = '1s';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type KeyInfo = { name: string; signing_version: number; signing_kid: string; versions: Array<{ version: number; kid: string; state: string }> };
async function keyInfo(signet: TestSignet): Promise<KeyInfo> {
  return ((await signet.get('/v1/keys')).body.keys as KeyInfo[]).find((k) => k.name === 'k8s')!;
}

describe('Signet as kube-apiserver\'s ExternalJWTSigner (real Vault, etcd, kube-apiserver)', () => {
  let dir: string;
  let vault: TestVault;
  let signet: TestSignet;
  let signers: KubernetesSigner[];
  let etcd: Etcd;
  let api: KubeApiserver;
  /** A token signed by version 1 before the rotation (the revocation test checks it stops passing). */
  let v1Token: string | undefined;

  async function apiJwks(): Promise<JSONWebKeySet> {
    const answer = await api.request('GET', '/openid/v1/jwks');
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body as JSONWebKeySet;
  }

  before(async () => {
    dir = clusterDir();
    vault = await startVault('dev');
    await vault.createKey('k8s', 'ecdsa-p256');
    signet = await startSignet(vault, [KEY], {
      config: {
        ...TIMING, vault: { address: vault.address, sign_timeout: SIGN_TIMEOUT, timeout: '1s' },
        kubernetes: [{ name: 'test', socket: join(dir, 'signer.sock'), key: 'k8s' }],
      },
      healthIntervalMs: 250,
    });
    await signet.ready(15_000);
    signers = await startKubernetesSigners(signet.app.services);
    etcd = await startEtcd(dir);
    api = await startKubeApiserver(dir, { etcd, signingEndpoint: join(dir, 'signer.sock') });
    await createServiceAccount(api, 'default', 'robot');
  });
  after(async () => {
    await api?.stop();
    await etcd?.stop();
    await Promise.all((signers ?? []).map((s) => s.close()));
    await signet?.close();
    await vault?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the socket has mode 0600; FetchKeys, Metadata and Sign were called and counted', async () => {
    assert.equal(statSync(join(dir, 'signer.sock')).mode & 0o777, 0o600);
    const metrics = (await signet.get('/metrics')).text;
    for (const method of ['FetchKeys', 'Metadata']) {
      assert.match(metrics, new RegExp(`signet_kubernetes_rpc_requests_total\\{cluster="test",method="${method}",outcome="ok"\\} [1-9]`));
    }
    assert.ok(signet.logs.some((l) => /"event":"listening_kubernetes"/.test(l)));
  });

  test('TokenRequest: the active version\'s kid, header {alg, kid, typ}; TokenReview authenticates; verifies with both JWKS', async () => {
    const info = await keyInfo(signet);
    const answer = await api.tokenRequest('default', 'robot');
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    const token = answer.token!;
    const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString());
    assert.deepEqual(header, { alg: 'ES256', kid: info.signing_kid, typ: 'JWT' });

    const review = await api.tokenReview(token);
    assert.equal(review.authenticated, true, review.error);
    assert.equal(review.username, 'system:serviceaccount:default:robot');

    const signetJwks = (await signet.get('/.well-known/jwks.json')).body as JSONWebKeySet;
    const { payload } = await jwtVerify(token, createLocalJWKSet(signetJwks), { issuer: ISSUER });
    assert.equal(payload.sub, 'system:serviceaccount:default:robot');
    assert.equal((payload.exp ?? 0) - (payload.iat ?? 0), 600);

    const kubeJwks = await apiJwks();
    assert.deepEqual(kubeJwks.keys.map((k) => k.kid).sort(), signetJwks.keys.map((k) => k.kid).sort());
    await jwtVerify(token, createLocalJWKSet(kubeJwks), { issuer: ISSUER });
    assert.match((await signet.get('/metrics')).text, /signet_kubernetes_rpc_requests_total\{cluster="test",method="Sign",outcome="ok"\} [1-9]/);
    // The claims kube-apiserver sent are never logged.
    assert.ok(!signet.logs.some((l) => l.includes(token.split('.')[1]!)));
  });

  test('the key signs only through the socket: HTTP sign refuses it', async () => {
    const refused = await signet.post('/v1/sign/k8s', { claims: { sub: 'x' } });
    assert.equal(refused.status, 403);
    assert.match(refused.body.errors[0], /signs only for kubernetes cluster "test"/);
  });

  test('rotation under a stream of TokenRequests: new key in the API server\'s JWKS first, zero failures, old tokens keep passing', async () => {
    const before = await keyInfo(signet);
    const oldToken = (await api.tokenRequest('default', 'robot')).token!;
    assert.equal(decodeProtectedHeader(oldToken).kid, before.signing_kid);
    v1Token = oldToken;

    // The API server's JWKS, sampled continuously: when each kid was first seen there.
    const firstSeen = new Map<string, number>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const seenAt = Date.now();
        for (const k of (await apiJwks()).keys) if (!firstSeen.has(k.kid!)) firstSeen.set(k.kid!, seenAt);
        await sleep(100);
      }
    })();

    const failures: string[] = [];
    const issued: Array<{ requestedAt: number; kid: string; token: string }> = [];
    let streaming = true;
    const stream = Array.from({ length: 2 }, async () => {
      while (streaming) {
        const requestedAt = Date.now();
        const answer = await api.tokenRequest('default', 'robot');
        if (answer.status !== 201) {
          failures.push(`TokenRequest HTTP ${answer.status}: ${JSON.stringify(answer.body).slice(0, 300)}`);
          continue;
        }
        const kid = decodeProtectedHeader(answer.token!).kid!;
        issued.push({ requestedAt, kid, token: answer.token! });
        for (const token of [answer.token!, oldToken]) {
          const review = await api.tokenReview(token);
          if (!review.authenticated) failures.push(`TokenReview of a ${token === oldToken ? 'pre-rotation' : 'fresh'} token: ${review.error}`);
        }
      }
    });
    try {
      // TokenRequests are streaming and the API server's JWKS is sampled before the rotation.
      await eventually(() => issued.length >= 4 && firstSeen.size > 0, 20_000, 'TokenRequests streaming before the rotation', 20);
      await vault.rotate('k8s');
      const after = await eventually(async () => {
        const info = await keyInfo(signet);
        return info.signing_version === 2 ? info : undefined;
      }, 30_000, 'version 2 signing');
      // A few more tokens from the new version, then stop.
      await eventually(() => issued.filter((i) => i.kid === after.signing_kid).length >= 5 || undefined, 30_000, 'tokens from version 2');
      streaming = false;
      await Promise.all(stream);
      sampling = false;
      await sampler;

      assert.deepEqual(failures, []);
      const firstNew = issued.find((i) => i.kid === after.signing_kid)!;
      const seen = firstSeen.get(after.signing_kid);
      assert.ok(seen !== undefined && seen < firstNew.requestedAt,
        `new kid in the API server's JWKS at ${seen}, first token with it requested at ${firstNew.requestedAt}`);
      assert.ok(issued.filter((i) => i.kid === before.signing_kid).length > 0, 'tokens from version 1 during the stream');
      // Both versions stay published (v1 is verify-only until max_ttl after the switch): every token still passes.
      const kubeJwks = await apiJwks();
      assert.ok(kubeJwks.keys.some((k) => k.kid === before.signing_kid));
      for (const { token } of [issued[0]!, firstNew, issued.at(-1)!]) {
        await jwtVerify(token, createLocalJWKSet(kubeJwks), { issuer: ISSUER });
      }
      assert.equal((await api.tokenReview(oldToken)).authenticated, true);
    } finally {
      streaming = false;
      sampling = false;
      await Promise.all(stream);
      await sampler;
    }
  });

  test('Vault paused: TokenRequests fail fast and recover by themselves; TokenReview keeps working', async () => {
    const existing = (await api.tokenRequest('default', 'robot')).token!;
    vault.pause();
    const during: Array<{ status: number; ms: number }> = [];
    try {
      for (let i = 0; i < 6; i++) {
        const answer = await api.tokenRequest('default', 'robot');
        during.push({ status: answer.status, ms: answer.ms });
        const review = await api.tokenReview(existing);
        assert.equal(review.authenticated, true, `TokenReview while Vault is paused: ${review.error}`);
      }
    } finally {
      vault.resume();
    }
    assert.ok(during.every((d) => d.status >= 500), JSON.stringify(during));
    // Bounded by sign_timeout (1 s, with one retry inside it) while the breaker counts failures, then the breaker
    // answers at once: nowhere near kube-apiserver's 34 s wait for a signer that does not answer.
    assert.ok(during.every((d) => d.ms < 5000), JSON.stringify(during));
    assert.ok(during.filter((d) => d.ms < 1000).length >= 3, `fail-fast answers once the breaker opened: ${JSON.stringify(during)}`);
    assert.ok(signet.logs.some((l) => /"component":"kubernetes".*"method":"Sign","outcome":"unavailable"/.test(l)));

    const recovered = await eventually(async () => {
      const answer = await api.tokenRequest('default', 'robot');
      return answer.status === 201 ? answer.token : undefined;
    }, 20_000, 'TokenRequest after Vault resumed');
    assert.equal((await api.tokenReview(recovered)).authenticated, true);
    assert.equal((await api.tokenReview(existing)).authenticated, true);
  });

  test('revocation (min_decryption_version): the old version leaves the API server\'s keys, its tokens stop passing', async () => {
    const info = await keyInfo(signet);
    const current = (await api.tokenRequest('default', 'robot')).token!;
    const old = info.versions.find((v) => v.version < info.signing_version);
    assert.ok(old, 'a superseded version from the rotation test');
    await vault.configKey('k8s', { min_decryption_version: info.signing_version });
    await eventually(async () => !(await apiJwks()).keys.some((k) => k.kid === old.kid), 15_000, 'old kid out of the API server\'s JWKS');
    assert.equal((await api.tokenReview(current)).authenticated, true);
    assert.ok(v1Token);
    assert.equal(decodeProtectedHeader(v1Token).kid, old.kid);
    assert.equal((await api.tokenReview(v1Token)).authenticated, false, 'a token of the revoked version');
  });

  test('every manifest in deploy/kubernetes/ passes the API server\'s strict dry run', async () => {
    const files: string[] = [];
    const walk = (d: string) => {
      for (const entry of readdirSync(d, { withFileTypes: true })) {
        if (entry.isDirectory()) walk(join(d, entry.name));
        else if (/\.ya?ml$/.test(entry.name)) files.push(join(d, entry.name));
      }
    };
    walk(join(ROOT, 'deploy', 'kubernetes'));
    const all = files.flatMap((file) => parseAllDocuments(readFileSync(file, 'utf8')).map((d) => ({ file: relative(ROOT, file), doc: d.toJS() as Record<string, any> })))
      .filter(({ doc }) => doc);
    // Not Kubernetes objects: kustomize's own file, and Signet's configuration for the control-plane static pod
    // (checked with Signet's loader in test/unit/kubernetes-signer.test.ts).
    assert.deepEqual(all.filter(({ doc }) => !doc.apiVersion || !doc.kind).map(({ file }) => file), ['deploy/kubernetes/control-plane/signet.yaml']);
    const docs = all.filter(({ doc }) => doc.kind && doc.kind !== 'Kustomization');
    assert.ok(docs.some(({ doc }) => doc.kind === 'Pod'), 'the control-plane static pod');

    // Where each kind lives: the API server's discovery.
    const resources = new Map<string, { name: string; namespaced: boolean }>();
    for (const groupVersion of new Set(docs.map(({ doc }) => doc.apiVersion as string))) {
      const answer = await api.request('GET', groupVersion.includes('/') ? `/apis/${groupVersion}` : `/api/${groupVersion}`);
      if (answer.status !== 200) continue;
      for (const r of answer.body.resources as Array<{ name: string; kind: string; namespaced: boolean }>) {
        if (!r.name.includes('/')) resources.set(`${groupVersion}/${r.kind}`, { name: r.name, namespaced: r.namespaced });
      }
    }
    // Namespaced objects are dry-run in their namespace, which must exist (NamespaceLifecycle admission).
    for (const { doc } of docs.filter(({ doc }) => doc.kind === 'Namespace')) {
      const created = await api.request('POST', '/api/v1/namespaces', doc);
      assert.ok(created.status === 201 || created.status === 409, JSON.stringify(created.body));
    }
    // What kube-controller-manager (not running here) would create: each namespace's "default" ServiceAccount,
    // which the ServiceAccount admission plugin looks up for a pod that names none.
    for (const namespace of new Set(docs.map(({ doc }) => doc.metadata?.namespace).filter(Boolean))) {
      const created = await api.request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
      assert.ok(created.status === 201 || created.status === 409, JSON.stringify(created.body));
    }
    const checked: string[] = [];
    const missingApi: string[] = [];
    for (const { file, doc } of docs) {
      const resource = resources.get(`${doc.apiVersion}/${doc.kind}`);
      if (!resource) {
        missingApi.push(`${file}: ${doc.apiVersion} ${doc.kind}`);
        continue;
      }
      const base = doc.apiVersion.includes('/') ? `/apis/${doc.apiVersion}` : `/api/${doc.apiVersion}`;
      const path = resource.namespaced ? `${base}/namespaces/${doc.metadata.namespace ?? 'default'}/${resource.name}` : `${base}/${resource.name}`;
      const answer = await api.request('POST', `${path}?dryRun=All&fieldValidation=Strict`, doc);
      // 409: a Namespace created above already exists; the strict validation ran before the conflict.
      assert.ok(answer.status === 201 || (doc.kind === 'Namespace' && answer.status === 409), `${file} ${doc.kind}/${doc.metadata.name}: HTTP ${answer.status} ${JSON.stringify(answer.body?.message ?? answer.body)}`);
      checked.push(`${doc.kind}/${doc.metadata.name}`);
    }
    // Only the Prometheus Operator's ServiceMonitor needs an API this bare API server does not serve (its CRD);
    // test/unit/kubernetes.test.ts keeps checking it by hand.
    assert.deepEqual(missingApi.map((m) => m.replace(/^.*: /, '')), ['monitoring.coreos.com/v1 ServiceMonitor']);
    assert.ok(checked.length >= 6, checked.join(', '));
  });
});

describe('serve() with kubernetes clusters (real Vault, a gRPC client on the socket)', () => {
  let dir: string;
  let vault: TestVault;
  before(async () => {
    dir = clusterDir();
    vault = await startVault('dev');
    await vault.createKey('k8s-384', 'ecdsa-p384');
    await vault.createKey('k8s-ed', 'ed25519');
  });
  after(async () => {
    await vault?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const configFor = (key: string, socket: string, extra: Record<string, unknown> = {}, token = vault.rootToken, top: Record<string, unknown> = {}) => buildConfig({
    listen: '127.0.0.1:0', vault: { address: vault.address }, log_level: 'warn', ...TIMING, ...top,
    keys: [{ ...KEY, name: key }], kubernetes: [{ name: 'c1', socket, key, ...extra }],
  }, { VAULT_TOKEN: token });

  type Call = (method: string, request: object) => Promise<any>;
  function client(socket: string, version: 0 | 1): { call: Call; close(): void } {
    const definition = serviceDefinitions()[version]!;
    const Client = makeGenericClientConstructor(definition, 'ExternalJWTSigner');
    const c = new Client(`unix:${socket}`, credentials.createInsecure()) as unknown as Record<string, (r: object, cb: (e: ServiceError | null, v: unknown) => void) => void>;
    return {
      call: (method, request) => new Promise((resolve, reject) => c[method]!.call(c, request, (e, v) => (e ? reject(e) : resolve(v)))),
      close: () => (c as unknown as { close(): void }).close(),
    };
  }

  test('one socket per cluster (0660 with a group), v1 and v1alpha1 alike; garbage claims are INVALID_ARGUMENT; closing removes the socket', async () => {
    const socket = join(dir, 'serve.sock');
    const running = await serve(configFor('k8s-384', socket, { socket_mode: '0660', socket_group: String(process.getgid!()) }), { logger: createLogger('warn') });
    try {
      assert.equal(statSync(socket).mode & 0o777, 0o660);
      for (const version of [0, 1] as const) {
        const { call, close } = client(socket, version);
        try {
          assert.deepEqual(await call('Metadata', {}), { maxTokenExpirationSeconds: 600 });
          const keys = await call('FetchKeys', {});
          assert.equal(keys.keys.length, 1);
          assert.ok(keys.refreshHintSeconds >= 1 && keys.refreshHintSeconds <= 2, String(keys.refreshHintSeconds));
          const claims = Buffer.from(JSON.stringify({ sub: 'x', exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
          const signed = await call('Sign', { claims });
          const header = JSON.parse(Buffer.from(signed.header, 'base64url').toString());
          assert.deepEqual(header, { alg: 'ES384', kid: keys.keys[0].keyId, typ: 'JWT' });
          for (const bad of ['%%%', Buffer.from('[1]').toString('base64url'), Buffer.from('{"exp":99999999999}').toString('base64url')]) {
            await assert.rejects(call('Sign', { claims: bad }), (e: ServiceError) => e.code === status.INVALID_ARGUMENT);
          }
        } finally {
          close();
        }
      }
    } finally {
      await running.close();
    }
    assert.throws(() => statSync(socket), /ENOENT/);
  });

  test('start-up refuses a key kube-apiserver cannot use (EdDSA), and leaves no socket', async () => {
    const socket = join(dir, 'ed.sock');
    await assert.rejects(serve(configFor('k8s-ed', socket), { logger: createLogger('silent') }), /kubernetes\[0\]\.key: key "k8s-ed" signs EdDSA .*accepts only RS256, ES256, ES384, ES512/);
    assert.throws(() => statSync(socket), /ENOENT/);
  });

  test('deploy/kubernetes/control-plane/vault-policy.hcl is enough for the signer, and grants nothing more', async () => {
    await vault.createKey('k8s-prod', 'ecdsa-p256');
    await vault.api('PUT', 'sys/policies/acl/signet-k8s-prod', { policy: readFileSync(join(ROOT, 'deploy', 'kubernetes', 'control-plane', 'vault-policy.hcl'), 'utf8') });
    const created = await vault.api('POST', 'auth/token/create', { policies: ['signet-k8s-prod'], no_default_policy: true, ttl: '1h', renewable: true });
    const token = (created.auth as { client_token: string }).client_token;
    const socket = join(dir, 'policy.sock');
    const running = await serve(configFor('k8s-prod', socket, {}, token), { logger: createLogger('warn') });
    const { call, close } = client(socket, 0);
    try {
      const keys = await call('FetchKeys', {});
      const claims = Buffer.from(JSON.stringify({ sub: 'x', exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
      const signed = await call('Sign', { claims });
      assert.equal(JSON.parse(Buffer.from(signed.header, 'base64url').toString()).kid, keys.keys[0].keyId);
    } finally {
      close();
      await running.close();
    }
    const refused: Array<[string, string, unknown?]> = [
      ['POST', 'transit/keys/k8s-prod/rotate', {}],
      ['POST', 'transit/keys/k8s-prod/config', { min_decryption_version: 1 }],
      ['GET', 'transit/export/signing-key/k8s-prod'],
      ['GET', 'transit/keys/k8s-384'],
      ['POST', 'transit/sign/k8s-384/sha2-384', { input: 'eA==' }],
      ['DELETE', 'transit/keys/k8s-prod'],
      ['GET', 'sys/policies/acl/signet-k8s-prod'],
    ];
    for (const [method, path, body] of refused) {
      assert.equal((await vaultRaw(vault.address, token, method, path, body)).status, 403, `${method} ${path}`);
    }
  });

  test('a signature that does not verify with the version\'s public key is never answered (INTERNAL, logged, counted)', async () => {
    const socket = join(dir, 'corrupt.sock');
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _e, done) { lines.push(...chunk.toString().split('\n').filter(Boolean)); done(); } });
    const running = await serve(configFor('k8s-384', socket), { logger: createLogger('warn', sink) });
    // Fault injection on the real path: Vault's real signature, one byte flipped on its way back (a corruption
    // anywhere between Vault and the answer).
    const batcher = running.app.services.batcher;
    const original = batcher.submit.bind(batcher);
    batcher.submit = (key, input, heldBytes, since, index, done) => original(key, input, heldBytes, since, index, (i, signature, error) => {
      if (signature === undefined) return done(i, signature, error);
      const [prefix, version, value] = signature.split(':');
      const bytes = Buffer.from(value!, 'base64url');
      bytes[10]! ^= 0x01;
      done(i, `${prefix}:${version}:${bytes.toString('base64url')}`, undefined);
    });
    const { call, close } = client(socket, 0);
    try {
      const claims = Buffer.from(JSON.stringify({ sub: 'x', exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
      await assert.rejects(call('Sign', { claims }), (e: ServiceError) => e.code === status.INTERNAL && /does not verify with that version's public key/.test(e.details));
      assert.ok(lines.some((l) => /"level":"error".*"method":"Sign","outcome":"internal"/.test(l)), lines.join('\n'));
      assert.match(await running.app.services.metrics.registry.metrics(), /signet_kubernetes_rpc_requests_total\{cluster="c1",method="Sign",outcome="internal"\} 1/);
      assert.ok(!lines.some((l) => l.includes(claims)));
    } finally {
      close();
      await running.close();
    }
  });

  test('overload is RESOURCE_EXHAUSTED, not UNAVAILABLE: with one Vault call in flight and a queue of one, the rest is refused at once', async () => {
    const socket = join(dir, 'overload.sock');
    const running = await serve(configFor('k8s-384', socket, {}, vault.rootToken, { batching: { max_in_flight: 1, max_queue: 1 } }), { logger: createLogger('silent') });
    const { call, close } = client(socket, 0);
    vault.pause();
    try {
      const claims = Buffer.from(JSON.stringify({ sub: 'x', exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
      const outcomes = await Promise.all(Array.from({ length: 8 }, async () => {
        const started = performance.now();
        try {
          await call('Sign', { claims });
          return { code: status.OK, ms: performance.now() - started };
        } catch (error) {
          return { code: (error as ServiceError).code, ms: performance.now() - started };
        }
      }));
      const exhausted = outcomes.filter((o) => o.code === status.RESOURCE_EXHAUSTED);
      // One call in flight and one queued wait for the paused Vault (the queued one is refused as overload when
      // its sign_timeout passes); the other six are refused on arrival.
      assert.ok(outcomes.every((o) => o.code === status.RESOURCE_EXHAUSTED || o.code === status.UNAVAILABLE), JSON.stringify(outcomes));
      assert.ok(exhausted.filter((o) => o.ms < 1000).length >= 6, JSON.stringify(outcomes));
      assert.match(await running.app.services.metrics.registry.metrics(), /signet_kubernetes_rpc_requests_total\{cluster="c1",method="Sign",outcome="resource_exhausted"\} [6-8]/);
    } finally {
      vault.resume();
      close();
      await running.close();
    }
  });

  test('the audit trail records each Sign, issued or refused, with kube-apiserver as the caller and no claim value', async () => {
    const socket = join(dir, 'audit.sock');
    const auditFile = join(dir, 'audit.log');
    const keyFile = join(dir, 'audit.key');
    writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
    const running = await serve(configFor('k8s-384', socket, {}, vault.rootToken, { audit: { file: auditFile, subject_key_file: keyFile } }), { logger: createLogger('silent') });
    const { call, close } = client(socket, 0);
    try {
      const claims = Buffer.from(JSON.stringify({ sub: 'system:serviceaccount:default:robot', jti: 'j-1', exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
      const signed = await call('Sign', { claims });
      await assert.rejects(call('Sign', { claims: Buffer.from('{"sub":"secret-value","exp":99999999999}').toString('base64url') }));
      const records = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(records.length, 2);
      const [issued, refused] = records;
      assert.equal(issued.caller, 'kubernetes:c1');
      assert.equal(issued.outcome, 'issued');
      assert.equal(issued.kid, JSON.parse(Buffer.from(signed.header, 'base64url').toString()).kid);
      assert.equal(issued.jti, 'j-1');
      assert.deepEqual(issued.claims.sort(), ['exp', 'jti', 'sub']);
      assert.equal(refused.outcome, 'invalid');
      assert.equal(refused.caller, 'kubernetes:c1');
      const text = readFileSync(auditFile, 'utf8');
      assert.ok(!text.includes('secret-value') && !text.includes('system:serviceaccount') && !text.includes(signed.signature));
    } finally {
      close();
      await running.close();
    }
  });
});
