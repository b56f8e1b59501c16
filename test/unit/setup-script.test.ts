// deploy/vault/setup.sh without a Vault: shellcheck (Debian's package, installed when missing and root), and the
// policy it writes for its default keys has exactly vault-policy.hcl's rules (SETUP_PRINT_POLICY=1 changes nothing).
// test/integration/vault-setup.test.ts runs it against a real Vault.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, policyRules, run, which } from '../harness/ops.ts';

const SETUP = join(ROOT, 'deploy', 'vault', 'setup.sh');

test('shellcheck finds nothing in setup.sh', async () => {
  let shellcheck = await which('shellcheck');
  if (!shellcheck && process.getuid?.() === 0) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let install = await run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', 'shellcheck'], { env, timeoutMs: 300_000 });
    if (install.code !== 0) {
      await run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update'], { env, timeoutMs: 300_000 });
      install = await run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', 'shellcheck'], { env, timeoutMs: 300_000 });
    }
    assert.equal(install.code, 0, `apt-get install -y shellcheck failed:\n${install.stdout}\n${install.stderr}`);
    shellcheck = await which('shellcheck');
  }
  assert.ok(shellcheck, 'shellcheck is not on PATH and this test is not root, so it cannot install it (apt-get install shellcheck)');
  const result = await run(shellcheck, ['--shell=bash', '--severity=style', SETUP]);
  assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
});

test('the policy it writes for its default keys is vault-policy.hcl, rule for rule', async () => {
  const result = await run('bash', [SETUP], { env: { PATH: process.env.PATH, SETUP_PRINT_POLICY: '1' } });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(
    Object.fromEntries(policyRules(result.stdout)),
    Object.fromEntries(policyRules(readFileSync(join(ROOT, 'vault-policy.hcl'), 'utf8'))),
  );
});

test('it refuses a key type that cannot sign JWTs and an alg that does not fit the type', async () => {
  for (const [keys, message] of [['enc:aes256-gcm96', /cannot sign JWTs/], ['k:ecdsa-p256:RS256', /RS256 does not fit ecdsa-p256/], ['bad/name:ed25519', /key name/]] as const) {
    const result = await run('bash', [SETUP], { env: { PATH: process.env.PATH, SETUP_PRINT_POLICY: '1', SIGNET_KEYS: keys } });
    assert.notEqual(result.code, 0, keys);
    assert.match(result.stderr, message);
  }
});
