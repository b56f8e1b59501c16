// The harness's pause() (SIGSTOP) against a real server on busy cores, as in CI where two test files run at once:
// when pause() returns, every thread of the server is stopped and a sign sent then is not answered until resume().
// Every outage test (breaker, outage, sign-queue, soak, hardening) relies on that. kill() alone only queues the
// signal: before stopProcess, OpenBao answered 15 of 100 such signs 2-7 ms after SIGSTOP with the cores busy, which
// is how breaker.test once saw a 200 from a "paused" server and sign-queue.test a call answered during its pause.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { threadsStopped } from '../../src/vault/dev-server.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const CYCLES = 20;

/** Whether Vault answers a sign within `ms`. */
async function answersWithin(vault: TestVault, ms: number): Promise<boolean> {
  try {
    await fetch(`${vault.address}/v1/transit/sign/app`, {
      method: 'POST',
      headers: { 'x-vault-token': vault.rootToken, 'content-type': 'application/json' },
      body: JSON.stringify({ input: 'aGVsbG8=' }),
      signal: AbortSignal.timeout(ms),
    });
    return true;
  } catch {
    return false;
  }
}

describe('pause() of a real Vault while the cores are busy', () => {
  let vault: TestVault;
  const busy: ChildProcess[] = [];

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ed25519');
    // Two busy loops, one per core of CI's machine: the server's threads then wait for a core after SIGSTOP.
    for (let i = 0; i < 2; i++) busy.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  });

  after(async () => {
    for (const child of busy) child.kill('SIGKILL');
    vault?.resume();
    await vault?.stop();
  });

  test(`${CYCLES} times: once pause() returns every thread is stopped, and a sign sent then waits for resume()`, async () => {
    const pid = vault.process.pid!;
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const started = performance.now();
      vault.pause();
      const tookMs = performance.now() - started;
      assert.ok(threadsStopped(pid), `cycle ${cycle}: a thread of the server still runs after pause()`);
      assert.equal(await answersWithin(vault, 150), false, `cycle ${cycle}: a sign was answered after pause() (${tookMs.toFixed(1)} ms)`);
      vault.resume();
      assert.equal(await answersWithin(vault, 10_000), true, `cycle ${cycle}: no answer after resume()`);
    }
  });
});
