// SIGTERM: Signet stops accepting, lets in-flight requests finish (here: signs waiting on a paused Vault), and
// exits within a bounded time.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort } from '../../src/vault/dev-server.ts';
import { builtSignet } from '../harness/build.ts';
import { eventually } from '../harness/signet.ts';
import { startVault } from '../harness/vault.ts';

// The production bundle (test/harness/build.ts), as the image runs it.
const CLI = await builtSignet();

test('SIGTERM drains in-flight requests and exits within the grace period', async () => {
  const vault = await startVault();
  try {
    await vault.createKey('app', 'ecdsa-p256');
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'signet-shutdown-'));
    const file = join(dir, 'signet.yaml');
    writeFileSync(file, `listen: 127.0.0.1:${port}\nvault: {address: "${vault.address}", sign_timeout: 2s}\nkeys: [{name: app, issuer: "https://i"}]\n`);
    const child = spawn(process.execPath, [CLI, 'serve', '--config', file], { env: { ...process.env, VAULT_TOKEN: vault.rootToken }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.on('exit', (code) => resolve({ code, at: Date.now() })));
    const url = `http://127.0.0.1:${port}`;
    await eventually(async () => (await fetch(`${url}/readyz`)).status === 200, 15_000, 'readiness');

    vault.pause();
    const inflight = Array.from({ length: 5 }, async () => {
      const r = await fetch(`${url}/v1/sign/app`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"claims":{}}' });
      return { status: r.status, at: Date.now() };
    });
    await new Promise((r) => setTimeout(r, 300));
    const termAt = Date.now();
    child.kill('SIGTERM');
    const answers = await Promise.all(inflight);
    vault.resume();
    // Each in-flight request got its answer (503 after sign_timeout, since Vault is paused), not a reset.
    for (const a of answers) assert.equal(a.status, 503);
    const { code, at } = await exited;
    assert.equal(code, 0);
    assert.ok(at - termAt < 10_000, `exited ${at - termAt} ms after SIGTERM`);
    await assert.rejects(fetch(`${url}/healthz`), 'no longer accepting');
  } finally {
    vault.resume();
    await vault.stop();
  }
});
