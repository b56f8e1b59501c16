// Vault's Kubernetes auth method, end to end with nothing standing in: a real etcd and kube-apiserver (signing
// service-account tokens with its own key), a real Vault (or OpenBao) whose auth/kubernetes reviews each login's
// JWT with the API server's TokenReview API (over TLS, trusting the API server's CA, as a reviewer service account
// bound to system:auth-delegator), and Signet reading a TokenRequest token from its token file. A token of another
// service account, or one minted for another audience, must be refused by Vault, and Signet must say so.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import {
  clusterDir, createServiceAccount, ISSUER, startEtcd, startKubeApiserver, type Etcd, type KubeApiserver,
} from '../harness/kubernetes.ts';
import { signLoad, type Load } from '../harness/load.ts';
import { scrape } from '../harness/metrics.ts';
import { vaultRaw } from '../harness/ops.ts';
import { eventually, postSign, startSignet, type TestSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const NS = 'apps';
const AUDIENCE = 'vault';

describe('kubernetes auth against a real kube-apiserver (TokenReview), Vault and Signet', () => {
  let dir: string;
  let etcd: Etcd;
  let api: KubeApiserver;
  let vault: TestVault;

  /** A TokenRequest token for NS/name with the given audiences. */
  async function saToken(name: string, audiences: string[]): Promise<string> {
    const answer = await api.tokenRequest(NS, name, 3600, audiences);
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    return answer.token!;
  }

  /** Tokens Vault issued through auth/kubernetes/login, by accessor lookup (root). */
  async function kubernetesLogins(): Promise<number> {
    const list = await vaultRaw(vault.address, vault.rootToken, 'LIST', 'auth/token/accessors');
    assert.equal(list.status, 200, JSON.stringify(list.body));
    let count = 0;
    for (const accessor of list.body.data.keys as string[]) {
      const info = await vault.api('POST', 'auth/token/lookup-accessor', { accessor });
      if ((info.data as { path?: string }).path === 'auth/kubernetes/login') count++;
    }
    return count;
  }

  async function startWith(jwt: string, role = 'signet'): Promise<{ signet: TestSignet; tokenFile: string }> {
    const tokenFile = join(dir, `token-${Math.random().toString(36).slice(2)}`);
    writeFileSync(tokenFile, jwt, { mode: 0o600 });
    const signet = await startSignet(vault, [{ name: 'app' }], {
      config: { vault: { address: vault.address, auth: { method: 'kubernetes', role, token_file: tokenFile } } },
      env: { VAULT_TOKEN: '' },
    });
    return { signet, tokenFile };
  }

  before(async () => {
    dir = clusterDir();
    [vault, etcd] = await Promise.all([startVault(), startEtcd(dir)]);
    api = await startKubeApiserver(dir, { etcd, ownKeyFile: true });
    const ns = await api.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    assert.equal(ns.status, 201, JSON.stringify(ns.body));
    for (const name of ['signet', 'other', 'vault-reviewer']) await createServiceAccount(api, NS, name);
    // Vault's reviewer may create TokenReviews, and nothing else: the binding Vault's docs prescribe.
    const binding = await api.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'vault-token-reviewer' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' },
      subjects: [{ kind: 'ServiceAccount', name: 'vault-reviewer', namespace: NS }],
    });
    assert.equal(binding.status, 201, JSON.stringify(binding.body));
    // The reviewer's token has the API server's own audience: it is a credential for the API server itself.
    const reviewer = await api.tokenRequest(NS, 'vault-reviewer', 3600);
    assert.equal(reviewer.status, 201, JSON.stringify(reviewer.body));

    await vault.createKey('app', 'ed25519');
    await vault.api('PUT', 'sys/policies/acl/signet', { policy: 'path "transit/*" { capabilities = ["read", "update"] }\npath "auth/token/*" { capabilities = ["read", "update"] }' });
    await vault.api('POST', 'sys/auth/kubernetes', { type: 'kubernetes' });
    await vault.api('POST', 'auth/kubernetes/config', {
      kubernetes_host: api.url, kubernetes_ca_cert: api.caCert, token_reviewer_jwt: reviewer.token, disable_local_ca_jwt: true,
    });
    await vault.api('POST', 'auth/kubernetes/role/signet', {
      bound_service_account_names: ['signet'], bound_service_account_namespaces: [NS], audience: AUDIENCE,
      token_policies: ['signet'], token_ttl: '1h',
    });
    // The same binding with a short max TTL: Signet must log in again every few seconds, reading its token file.
    await vault.api('POST', 'auth/kubernetes/role/signet-short', {
      bound_service_account_names: ['signet'], bound_service_account_namespaces: [NS], audience: AUDIENCE,
      token_policies: ['signet'], token_ttl: '4s', token_max_ttl: '6s',
    });
  });

  after(async () => {
    await api?.stop();
    await etcd?.stop();
    await vault?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('Signet logs in with its service account\'s TokenRequest token and signs', async () => {
    const jwt = await saToken('signet', [AUDIENCE]);
    const { signet } = await startWith(jwt);
    try {
      await signet.ready(20_000).catch((e) => {
        throw new Error(`${e.message}\n${signet.logs.filter((l) => l.includes('vault-auth')).join('\n')}`);
      });
      const signed = await postSign(signet, '/v1/sign/app', { claims: { sub: 'k8s-auth' } });
      assert.equal(signed.status, 200, JSON.stringify(signed.body));
      const verified = await signet.post('/v1/verify', { token: signed.body.token });
      assert.equal(verified.status, 200, JSON.stringify(verified.body));
      // The token Signet holds is one Vault issued for this login, to this service account, after a TokenReview.
      const vaultToken = signet.app.services.auth.current();
      const lookup = await vault.api('POST', 'auth/token/lookup', { token: vaultToken });
      const data = lookup.data as { path: string; policies: string[]; meta: Record<string, string> };
      assert.equal(data.path, 'auth/kubernetes/login');
      assert.deepEqual(data.policies, ['default', 'signet']);
      assert.equal(data.meta.service_account_name, 'signet');
      assert.equal(data.meta.service_account_namespace, NS);
      assert.equal(await scrape(signet, 'signet_vault_authenticated'), 1);
      assert.equal(await scrape(signet, 'signet_vault_auth_failures_total'), 0);
      for (const line of signet.logs) assert.ok(!line.includes(jwt) && !line.includes(vaultToken), 'a log line holds a token');
    } finally {
      await signet.close();
    }
  });

  /** A JWT with the claims of Signet's service-account token, signed by a key the API server never had. */
  async function forgedToken(): Promise<string> {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return new SignJWT({
      'kubernetes.io': { namespace: NS, serviceaccount: { name: 'signet', uid: 'forged-uid' } },
      'kubernetes.io/serviceaccount/namespace': NS,
      'kubernetes.io/serviceaccount/service-account.name': 'signet',
      'kubernetes.io/serviceaccount/service-account.uid': 'forged-uid',
    })
      .setProtectedHeader({ alg: 'ES256' }).setSubject(`system:serviceaccount:${NS}:signet`).setIssuer(ISSUER)
      .setAudience([AUDIENCE]).setIssuedAt().setExpirationTime('1h').sign(privateKey);
  }

  for (const { what, token, vaultSays, apiServerVouches } of [
    {
      what: 'a token of another service account (not in the role\'s bound_service_account_names)',
      token: () => saToken('other', [AUDIENCE]), vaultSays: /service account name not authorized/, apiServerVouches: true,
    },
    {
      what: 'a token of Signet\'s service account minted for another audience',
      token: () => saToken('signet', ['not-vault']), vaultSays: /audience/, apiServerVouches: true,
    },
    {
      // Its claims pass Vault's own checks: only the API server's TokenReview can refuse it.
      what: 'a token with Signet\'s claims that the API server did not sign',
      token: forgedToken, vaultSays: /permission denied/, apiServerVouches: false,
    },
  ]) {
    test(`Vault refuses ${what}: no Vault token, Signet not ready, its metric and log say so`, async () => {
      const jwt = await token();
      const audiences = (JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { aud: string[] }).aud;
      const review = await api.request('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: jwt, audiences },
      });
      assert.equal(review.status, 201, JSON.stringify(review.body));
      assert.equal(review.body.status.authenticated === true, apiServerVouches, JSON.stringify(review.body));
      const loginsBefore = await kubernetesLogins();
      const direct = await vaultRaw(vault.address, undefined, 'POST', 'auth/kubernetes/login', { role: 'signet', jwt });
      assert.equal(direct.status, 403, JSON.stringify(direct.body));
      assert.match(String(direct.body.errors), vaultSays);
      const { signet } = await startWith(jwt);
      try {
        const failures = await eventually(async () => {
          const n = await scrape(signet, 'signet_vault_auth_failures_total', { reason: 'refused' });
          return n >= 1 ? n : undefined;
        }, 20_000, 'a refused login counted by signet_vault_auth_failures_total{reason="refused"}');
        assert.ok(failures >= 1);
        const failed = signet.logs.map((l) => JSON.parse(l) as Record<string, unknown>)
          .filter((l) => l.component === 'vault-auth' && l.event === 'auth_failed');
        assert.ok(failed.length >= 1, signet.logs.join('\n'));
        assert.match(String(failed[0]!.err), /HTTP 403/);
        assert.match(String(failed[0]!.err), vaultSays);
        assert.ok(!signet.logs.some((l) => l.includes('"event":"authenticated"')), 'Signet logged in');
        assert.equal(signet.app.services.auth.current(), '');
        assert.equal(await scrape(signet, 'signet_vault_authenticated'), 0);
        const ready = await signet.get('/readyz');
        assert.equal(ready.status, 503, ready.text);
        const signed = await postSign(signet, '/v1/sign/app', { claims: {} });
        assert.equal(signed.status, 503, JSON.stringify(signed.body));
        for (const line of signet.logs) assert.ok(!line.includes(jwt), 'a log line holds the service-account token');
      } finally {
        await signet.close();
      }
      assert.equal(await kubernetesLogins(), loginsBefore, 'Vault issued a token for a refused login');
    });
  }

  test('a rotated token file (the kubelet writes a new TokenRequest token) is what the next login uses', async () => {
    // The first token is bound to a Secret: deleting the Secret makes the API server refuse it, so a login that
    // re-read the old token could not succeed.
    const secret = await api.request('POST', `/api/v1/namespaces/${NS}/secrets`, {
      apiVersion: 'v1', kind: 'Secret', metadata: { name: 'signet-token-binding' }, type: 'Opaque',
    });
    assert.equal(secret.status, 201, JSON.stringify(secret.body));
    const bound = await api.request('POST', `/api/v1/namespaces/${NS}/serviceaccounts/signet/token`, {
      apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest',
      spec: {
        audiences: [AUDIENCE], expirationSeconds: 3600,
        boundObjectRef: { apiVersion: 'v1', kind: 'Secret', name: 'signet-token-binding', uid: secret.body.metadata.uid },
      },
    });
    assert.equal(bound.status, 201, JSON.stringify(bound.body));
    const first = bound.body.status.token as string;
    let load: Load | undefined;
    const { signet, tokenFile } = await startWith(first, 'signet-short');
    try {
      await signet.ready(20_000);
      const firstVaultToken = signet.app.services.auth.current();
      assert.equal((await postSign(signet, '/v1/sign/app', { claims: {} })).status, 200);
      // 32 clients sign throughout: across the token file's rotation, the refused renewal (OpenBao) and the new login.
      load = signLoad(signet.url, { clients: 32, pauseAfterFailureMs: 200 });
      // The kubelet's rotation: a new token in the file (at once, by a rename, never half written), the old one
      // then refused by the API server (its Secret deleted). Any login from the write on reads the new token.
      const second = await saToken('signet', [AUDIENCE]);
      writeFileSync(`${tokenFile}.new`, second, { mode: 0o600 });
      renameSync(`${tokenFile}.new`, tokenFile);
      const deleted = await api.request('DELETE', `/api/v1/namespaces/${NS}/secrets/signet-token-binding`);
      assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
      await eventually(async () => {
        const review = await api.request('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
          apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: first, audiences: [AUDIENCE] },
        });
        return review.body?.status?.authenticated !== true;
      }, 30_000, 'the API server refusing the token bound to the deleted Secret');
      const loginsBefore = signet.logs.filter((l) => l.includes('"event":"authenticated"')).length;
      // Near the role's 6 s max TTL Signet logs in again, now that the old token is refused: only the file's new
      // token can succeed. (On OpenBao, whose Kubernetes auth reviews the login's JWT again at each renewal, the
      // renewal of a Vault token obtained with the old JWT is refused while that token still works: Signet logs in
      // again at once (event renewal_refused) instead of letting it lapse.) Within the 4 s TTL plus a margin.
      await eventually(() => signet.logs.filter((l) => l.includes('"event":"authenticated"')).length > loginsBefore, 15_000, 'a new login');
      const vaultToken = signet.app.services.auth.current();
      assert.notEqual(vaultToken, firstVaultToken);
      const lookup = await vault.api('POST', 'auth/token/lookup', { token: vaultToken });
      assert.equal((lookup.data as { meta: Record<string, string> }).meta.service_account_name, 'signet');
      // No login was refused (the old token's would be: "for login (HTTP 403 …"). Renewals are not this test's
      // subject: with second-granular TTLs one may still meet the max TTL (HTTP 500) on a loaded machine.
      const refusedLogins = signet.logs.filter((l) => l.includes('"event":"auth_failed"') && l.includes('for login'));
      assert.deepEqual(refusedLogins, [], signet.logs.filter((l) => l.includes('vault-auth')).join('\n'));
      const signed = await postSign(signet, '/v1/sign/app', { claims: {} });
      assert.equal(signed.status, 200, JSON.stringify(signed.body));
      // Let the clients sign under the new login too, then check every answer of the run.
      const minimum = load.outcomes.length + 64;
      await eventually(() => load!.outcomes.length >= minimum, 15_000, 'signs under the new login');
      const outcomes = await load.stop();
      load = undefined;
      const refused = outcomes.filter((o) => o.status !== 200);
      process.stderr.write(`kubernetes auth rotation: ${outcomes.length} signs by 32 clients, ${refused.length} not 200\n`);
      // Only the event-loop guard's shedding (a loaded CI) may answer otherwise; the token's lifecycle never may.
      assert.deepEqual(refused.filter((o) => !/eventLoopDelay/.test(o.error ?? '')).map((o) => `${o.status} ${o.error}`), []);
      for (const line of signet.logs) assert.ok(!line.includes(first) && !line.includes(second), 'a log line holds a token');
    } finally {
      await load?.stop();
      await signet.close();
    }
  });
});
