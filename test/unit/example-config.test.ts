// deploy/signet.example.yaml (also the image's default /etc/signet/signet.yaml): Signet's own loader accepts it, it
// shows every field the loader knows, the values it gives as defaults are the loader's defaults, and its keys are
// the ones vault-policy.hcl is written for.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { DEFAULTS, buildConfig, loadConfig } from '../../src/config.ts';
import { isLoopbackListen } from '../../src/security/hosts.ts';
import { algSpec } from '../../src/jwt/algorithms.ts';
import { ROOT, policyRules } from '../harness/ops.ts';

const FILE = join(ROOT, 'deploy', 'signet.example.yaml');
const text = readFileSync(FILE, 'utf8');

test('Signet loads it (with VAULT_TOKEN, as its token method needs) and it listens on loopback', () => {
  const config = loadConfig(FILE, { VAULT_TOKEN: 'hvs.example' });
  assert.ok(isLoopbackListen(config.listen));
  assert.equal(config.vault.auth.method, 'token');
  assert.throws(() => loadConfig(FILE, {}), /VAULT_TOKEN/, 'without a token it says what is missing');
});

test('it shows every field the loader knows (set, or commented out with an explanation)', () => {
  const source = readFileSync(join(ROOT, 'src', 'config.ts'), 'utf8');
  const lists = [
    ...source.matchAll(/const \w+_FIELDS = \[([^\]]*)\]/g),
    ...source.matchAll(/onlyKnown\([^,]+,\s*'[^']*',\s*\[([^\]]*)\]\)/g),
  ].map((m) => [...m[1]!.matchAll(/'([a-z_]+)'/g)].map((n) => n[1]!));
  const fields = new Set(lists.flat());
  assert.ok(fields.size > 25, `only ${fields.size} fields found in src/config.ts`);
  const missing = [...fields].filter((f) => !new RegExp(`^\\s*#?\\s*(- )?${f}:`, 'm').test(text));
  assert.deepEqual(missing, []);
});

test('the values it calls defaults are the loader\'s defaults', () => {
  const config = buildConfig(parse(text), { VAULT_TOKEN: 'x' });
  const app = config.keys.find((k) => k.name === 'app')!;
  assert.equal(config.listen, DEFAULTS.listen);
  assert.equal(config.vault.mount, DEFAULTS.mount);
  assert.equal(config.vault.timeout, DEFAULTS.vaultTimeout);
  assert.equal(config.vault.signTimeout, DEFAULTS.signTimeout);
  assert.equal(app.defaultTtl, DEFAULTS.defaultTtl);
  assert.equal(app.maxTtl, DEFAULTS.maxTtl);
  assert.equal(app.publishDelay, DEFAULTS.publishDelay);
  assert.equal(config.jwks.maxAge, DEFAULTS.jwksMaxAge);
  assert.equal(config.refreshInterval, DEFAULTS.refreshInterval);
  assert.equal(config.clockSkew, DEFAULTS.clockSkew);
  assert.equal(config.bodyLimit, DEFAULTS.bodyLimit);
  assert.equal(config.logLevel, DEFAULTS.logLevel);
  // A key with nothing but name and issuer gets the same values.
  const minimal = buildConfig({ keys: [{ name: 'k', issuer: 'https://i' }] }, { VAULT_TOKEN: 'x' }).keys[0]!;
  assert.deepEqual([minimal.defaultTtl, minimal.maxTtl, minimal.publishDelay], [app.defaultTtl, app.maxTtl, app.publishDelay]);
});

test('its keys are the ones vault-policy.hcl grants, with the Transit paths their algs use', () => {
  const config = buildConfig(parse(text), { VAULT_TOKEN: 'x' });
  const rules = policyRules(readFileSync(join(ROOT, 'vault-policy.hcl'), 'utf8'));
  const expected = new Map<string, string[]>([['auth/token/lookup-self', ['read']], ['auth/token/renew-self', ['update']]]);
  for (const key of config.keys) {
    const spec = algSpec(key.alg!);
    expected.set(`${config.vault.mount}/keys/${key.name}`, ['read']);
    expected.set(`${config.vault.mount}/${spec.operation}/${key.name}${spec.hash ? `/${spec.hash}` : ''}`, ['update']);
    if (spec.operation === 'hmac') {
      expected.set(`${config.vault.mount}/verify/${key.name}/${spec.hash}`, ['update']);
      expected.set(`${config.vault.mount}/hmac/${key.name}/sha2-256`, ['update']); // the load-time fingerprint
    }
  }
  assert.deepEqual(Object.fromEntries([...rules].sort()), Object.fromEntries([...expected].sort()));
});
