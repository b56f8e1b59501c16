// public_listen: a second, read-only listener for the JWKS, discovery, health and metrics, reachable by other
// hosts (verifiers in other pods, the kubelet, Prometheus), with no way to sign.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildConfig } from '../../src/config.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { serve } from '../../src/server.ts';
import { freePort } from '../../src/vault/dev-server.ts';
import { rawRequest } from '../harness/http.ts';
import { eventually } from '../harness/signet.ts';
import { startVault } from '../harness/vault.ts';

test('the public listener serves keys, health and metrics, and cannot sign', async () => {
  const vault = await startVault();
  try {
    await vault.createKey('app', 'ecdsa-p256');
    const [port, publicPort] = [await freePort(), await freePort()];
    const config = buildConfig({
      listen: `127.0.0.1:${port}`, public_listen: `127.0.0.1:${publicPort}`,
      vault: { address: vault.address }, keys: [{ name: 'app', issuer: 'https://issuer.test' }],
    }, { VAULT_TOKEN: vault.rootToken });
    const running = await serve(config, { logger: createLogger('silent') });
    try {
      const main = `http://127.0.0.1:${port}`;
      const pub = `http://127.0.0.1:${publicPort}`;
      await eventually(async () => (await fetch(`${pub}/readyz`)).status === 200, 10_000, 'readiness on the public listener');
      const signed = await (await fetch(`${main}/v1/sign/app`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"claims":{}}' })).json() as { kid: string };
      const jwks = await (await fetch(`${pub}/.well-known/jwks.json`)).json() as { keys: Array<{ kid: string }> };
      assert.deepEqual(jwks.keys.map((k) => k.kid), [signed.kid]);
      assert.equal((await fetch(`${pub}/.well-known/openid-configuration`)).status, 200);
      assert.match(await (await fetch(`${pub}/metrics`)).text(), /^signet_key_signing_version\{key="app",alg="ES256"\} 1$/m);
      // Nothing that signs, verifies or lists keys is there.
      for (const [method, path] of [['POST', '/v1/sign/app'], ['POST', '/v1/sign'], ['POST', '/v1/verify'], ['GET', '/v1/keys']] as const) {
        const response = await fetch(`${pub}${path}`, { method, headers: { 'content-type': 'application/json' }, body: method === 'POST' ? '{"claims":{}}' : undefined });
        assert.equal(response.status, 404, `${method} ${path} on the public listener`);
      }
      // Reached under a Service name: the public listener answers; the signing listener refuses that Host.
      // (fetch drops a Host header; a raw request sends it.)
      const host = { host: 'signet.apps.svc.cluster.local' };
      assert.equal((await rawRequest({ port: publicPort, path: '/.well-known/jwks.json', headers: host })).status, 200);
      assert.equal((await rawRequest({ port, path: '/.well-known/jwks.json', headers: host })).status, 403);
    } finally {
      await running.close();
    }
  } finally {
    await vault.stop();
  }
});

test('public_listen must be host:port and differ from listen', () => {
  const base = { vault: { address: 'http://127.0.0.1:8200' }, keys: [{ name: 'app', issuer: 'https://i' }] };
  assert.throws(() => buildConfig({ ...base, public_listen: 'unix:/tmp/x.sock' }, { VAULT_TOKEN: 't' }), /configuration: public_listen: must be host:port/);
  assert.throws(() => buildConfig({ ...base, listen: '127.0.0.1:8250', public_listen: '127.0.0.1:8250' }, { VAULT_TOKEN: 't' }), /configuration: public_listen: must differ from listen/);
  assert.equal(buildConfig({ ...base, public_listen: '0.0.0.0:8251' }, { VAULT_TOKEN: 't' }).publicListen, '0.0.0.0:8251');
});
