// SIGTERM: Signet stops accepting new connections, lets the requests in flight finish with their real answers
// (here: signs waiting on a stalled Vault that answers after SIGTERM), and exits within a bounded time.

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

test('SIGTERM: signs in flight complete with 200, new connections are refused, exit 0 within the grace period', async () => {
  const vault = await startVault();
  let child: ReturnType<typeof spawn> | undefined;
  try {
    await vault.createKey('app', 'ecdsa-p256');
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'signet-shutdown-'));
    const file = join(dir, 'signet.yaml');
    writeFileSync(file, `listen: 127.0.0.1:${port}\nvault: {address: "${vault.address}", sign_timeout: 2s}\nkeys: [{name: app, issuer: "https://i"}]\n`);
    child = spawn(process.execPath, [CLI, 'serve', '--config', file], { env: { ...process.env, VAULT_TOKEN: vault.rootToken }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<{ code: number | null; at: number }>((resolve) => child!.on('exit', (code) => resolve({ code, at: Date.now() })));
    const url = `http://127.0.0.1:${port}`;
    await eventually(async () => (await fetch(`${url}/readyz`)).status === 200, 15_000, 'readiness');

    // Vault is stalled while five signs arrive, so they are in flight (one Vault call out, four gathered behind it:
    // batching.partial_in_flight 1) when SIGTERM lands; Vault then answers well inside sign_timeout (2 s), so each
    // must complete with 200.
    vault.pause();
    const inflight = Array.from({ length: 5 }, async () => {
      const r = await fetch(`${url}/v1/sign/app`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"claims":{}}' });
      return { status: r.status, body: await r.json() as { token?: string }, at: Date.now() };
    });
    await eventually(async () => /signet_sign_queue_length\{key="app"\} 4\b/.test(await (await fetch(`${url}/metrics`)).text()), 5000, 'four signs queued behind one Vault call');
    const termAt = Date.now();
    child!.kill('SIGTERM');
    // New connections are refused once SIGTERM is handled, while the five are still waiting.
    await eventually(async () => {
      try {
        await fetch(`${url}/healthz`);
        return false;
      } catch {
        return true;
      }
    }, 5000, 'new connections refused');
    vault.resume();
    const answers = await Promise.all(inflight);
    for (const a of answers) {
      assert.equal(a.status, 200, 'a sign in flight at SIGTERM completes');
      assert.equal(typeof a.body.token, 'string');
    }
    const { code, at } = await exited;
    assert.equal(code, 0);
    assert.ok(at - termAt < 10_000, `exited ${at - termAt} ms after SIGTERM`);
  } finally {
    // A failed wait above must not leave Signet running (its pipes would keep this test process alive).
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    vault.resume();
    await vault.stop();
  }
});
