// Vault's Kubernetes auth, end to end through a real Vault. No cluster runs here, so the one call Vault makes to
// Kubernetes (a TokenReview of the service-account JWT) is answered by a small local stand-in for the API
// server; Vault itself, the login, the role binding and Signet's auth path are all real.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SignJWT } from 'jose';
import { startSignet } from '../harness/signet.ts';
import { startVault, UNUSED_CA_PEM } from '../harness/vault.ts';

test('kubernetes auth: Signet logs in with its service-account token and signs', async () => {
  const reviews: unknown[] = [];
  const apiServer = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const review = JSON.parse(body || '{}') as { spec?: { audiences?: string[] } };
      reviews.push({ path: req.url, body: review });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({
        apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview',
        status: {
          authenticated: true,
          user: { username: 'system:serviceaccount:apps:signet', uid: 'sa-uid-1', groups: ['system:serviceaccounts', 'system:serviceaccounts:apps'] },
          audiences: review.spec?.audiences ?? ['vault'],
        },
      }));
    });
  });
  await new Promise<void>((resolve) => apiServer.listen(0, '127.0.0.1', resolve));
  const apiPort = (apiServer.address() as { port: number }).port;
  const vault = await startVault();
  try {
    await vault.createKey('app', 'ed25519');
    await vault.api('PUT', 'sys/policies/acl/signet', { policy: 'path "transit/*" { capabilities = ["read", "update"] }\npath "auth/token/*" { capabilities = ["read", "update"] }' });
    await vault.api('POST', 'sys/auth/kubernetes', { type: 'kubernetes' });
    await vault.api('POST', 'auth/kubernetes/config', { kubernetes_host: `http://127.0.0.1:${apiPort}`, disable_local_ca_jwt: true, kubernetes_ca_cert: UNUSED_CA_PEM, token_reviewer_jwt: 'reviewer' });
    await vault.api('POST', 'auth/kubernetes/role/signet', {
      bound_service_account_names: ['signet'], bound_service_account_namespaces: ['apps'], token_policies: ['signet'], token_ttl: '1h',
    });
    // A service-account token as the kubelet projects it (Vault reads its claims; the API server vouches for it).
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwt = await new SignJWT({
      'kubernetes.io': { namespace: 'apps', serviceaccount: { name: 'signet', uid: 'sa-uid-1' } },
      'kubernetes.io/serviceaccount/namespace': 'apps',
      'kubernetes.io/serviceaccount/service-account.name': 'signet',
      'kubernetes.io/serviceaccount/service-account.uid': 'sa-uid-1',
    }).setProtectedHeader({ alg: 'ES256' }).setSubject('system:serviceaccount:apps:signet').setIssuer('https://kubernetes.default.svc')
      .setAudience(['vault']).setIssuedAt().setExpirationTime('1h').sign(privateKey);
    const dir = mkdtempSync(join(tmpdir(), 'signet-k8s-'));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, jwt);
    const signet = await startSignet(vault, [{ name: 'app' }], {
      config: { vault: { address: vault.address, auth: { method: 'kubernetes', role: 'signet', token_file: tokenFile } } },
      env: { VAULT_TOKEN: '' },
    });
    try {
      await signet.ready(10_000).catch((e) => {
        throw new Error(`${e.message}\n${signet.logs.filter((l) => l.includes('auth')).join('\n')}\nreviews: ${JSON.stringify(reviews)}`);
      });
      const signed = await signet.post('/v1/sign/app', { claims: {} });
      assert.equal(signed.status, 200, JSON.stringify(signed.body));
      assert.equal(reviews.length, 1);
      assert.equal((reviews[0] as { path: string }).path, '/apis/authentication.k8s.io/v1/tokenreviews');
      assert.equal((reviews[0] as { body: { spec: { token: string } } }).body.spec.token, jwt);
      for (const line of signet.logs) assert.ok(!line.includes(jwt) && !line.includes(signet.app.services.auth.current()));
    } finally {
      await signet.close();
    }
  } finally {
    await vault.stop();
    apiServer.close();
  }
});
