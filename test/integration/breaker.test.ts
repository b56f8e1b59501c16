// The sign path's circuit breaker against a real Vault paused with SIGSTOP (it keeps its sockets and answers
// nothing), read through signet_vault_circuit_state (0 closed, 1 half-open, 2 open) and the sign answers:
// - the states in order as the circuit opens, half-opens on the first sign after the cooldown, and closes;
// - the health probe closing an open circuit as soon as Vault answers again, with no sign traffic at all (a
//   cooldown far longer than the test, so nothing but the probe can close it).
// A pass-through TCP proxy between Signet and Vault counts the sign calls that reach Vault.

import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { scrape } from '../harness/metrics.ts';
import { eventually, postSign, startSignet, type StartOptions, type TestSignet } from '../harness/signet.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const SIGN_CALL = /^POST \/v1\/transit\/sign\/app /;
const circuit = (signet: TestSignet) => scrape(signet, 'signet_vault_circuit_state');

describe('circuit breaker of the sign path (real Vault, paused and resumed)', () => {
  let vault: TestVault | undefined;
  let proxy: TcpProxy | undefined;
  let signet: TestSignet | undefined;

  async function start(options: StartOptions & { signTimeout: string }): Promise<{ vault: TestVault; proxy: TcpProxy; signet: TestSignet }> {
    vault = await startVault();
    await vault.createKey('app', 'ed25519');
    proxy = await startTcpProxy(vault.address);
    signet = await startSignet(vault, [{ name: 'app' }], {
      ...options,
      config: { vault: { address: proxy.address, sign_timeout: options.signTimeout } },
    });
    await signet.ready(15_000);
    const warm = await postSign(signet, '/v1/sign/app', { claims: {} });
    assert.equal(warm.status, 200, JSON.stringify(warm.body));
    assert.equal(await circuit(signet), 0);
    return { vault, proxy, signet };
  }

  afterEach(async () => {
    vault?.resume();
    await signet?.close();
    await proxy?.close();
    await vault?.stop();
    vault = undefined;
    proxy = undefined;
    signet = undefined;
  });

  test('signet_vault_circuit_state is 0, then 2 at the third failure, 1 while the probe sign is out, 0 when it succeeds', async () => {
    // Long enough that a sign the event-loop guard sheds (sent again after Retry-After: 1 s) still meets the open circuit.
    const cooldownMs = 3000;
    // No health probe after start-up (it would close the circuit itself): only signs move the breaker here. No
    // batching: each sign is its own Vault call, so a sign during the probe meets the breaker instead of waiting
    // in the batcher's queue for the probe call to return.
    const { vault, proxy, signet } = await start({
      // sign_timeout is also how long the probe sign waits on the paused Vault while the test looks at it: ample.
      signTimeout: '4s', breaker: { failureThreshold: 3, cooldownMs, maxCooldownMs: cooldownMs }, healthIntervalMs: 3_600_000,
      batcher: { enabled: false },
    });
    vault.pause();
    // Three calls Vault never answers, one after another: each times out at sign_timeout (too late to retry).
    for (let i = 1; i <= 3; i++) {
      const answer = await postSign(signet, '/v1/sign/app', { claims: {} });
      assert.equal(answer.status, 503, JSON.stringify(answer.body));
      assert.equal(await circuit(signet), i < 3 ? 0 : 2, `after ${i} failure(s)`);
    }
    const openedAt = Date.now();
    // Open: a sign fails at once, and no call leaves for Vault.
    const onWire = proxy.seen(SIGN_CALL);
    const refused = await postSign(signet, '/v1/sign/app', { claims: {} });
    assert.equal(refused.status, 503);
    assert.match(refused.body.errors[0], /failing fast/);
    assert.equal(proxy.seen(SIGN_CALL), onWire);
    assert.equal(await circuit(signet), 2);
    // The cooldown is a configured duration, not an event: wait it out. With no sign, the circuit stays open.
    await new Promise((r) => setTimeout(r, cooldownMs - (Date.now() - openedAt) + 100));
    assert.equal(await circuit(signet), 2, 'no sign since the cooldown ended: still open');
    // The first sign after the cooldown is the probe: half-open while it waits on the paused Vault.
    const probe = postSign(signet, '/v1/sign/app', { claims: { sub: 'probe' } });
    await eventually(async () => (await circuit(signet)) === 1, 10_000, 'the circuit half-open (1)');
    await eventually(() => proxy.seen(SIGN_CALL) === onWire + 1, 10_000, 'the probe call on the wire');
    // Only one probe at a time: another sign meanwhile fails fast and sends nothing.
    const second = await postSign(signet, '/v1/sign/app', { claims: {} });
    assert.equal(second.status, 503, JSON.stringify(second.body));
    assert.match(second.body.errors[0], /failing fast/, 'refused by the breaker at once, not after sign_timeout');
    assert.equal(proxy.seen(SIGN_CALL), onWire + 1);
    assert.equal(await circuit(signet), 1);
    vault.resume();
    const answered = await probe;
    assert.equal(answered.status, 200, JSON.stringify(answered.body));
    assert.equal(await circuit(signet), 0);
    const after = await postSign(signet, '/v1/sign/app', { claims: {} });
    assert.equal(after.status, 200, JSON.stringify(after.body));
  });

  test('the health probe closes an open circuit when Vault answers again, before any sign reaches Vault', async () => {
    const healthIntervalMs = 500;
    // A cooldown far longer than the test: a sign could not close this circuit; only the probe can.
    const { vault, proxy, signet } = await start({
      signTimeout: '1s', breaker: { failureThreshold: 3, cooldownMs: 600_000, maxCooldownMs: 600_000 }, healthIntervalMs,
      batcher: { enabled: false },
    });
    vault.pause();
    // Three signs at once, three calls (no batching): all time out, the third failure opens the circuit.
    const failed = await Promise.all([1, 2, 3].map(() => postSign(signet, '/v1/sign/app', { claims: {} })));
    for (const answer of failed) assert.equal(answer.status, 503, JSON.stringify(answer.body));
    assert.equal(await circuit(signet), 2);
    await eventually(async () => (await scrape(signet, 'signet_vault_up')) === 0, 10_000, 'the probe seeing Vault away (signet_vault_up 0)');
    assert.equal(await circuit(signet), 2, 'the probe does not close the circuit while Vault is away');
    const onWire = proxy.seen(SIGN_CALL);
    const closedLogs = () => signet.logs.filter((l) => l.includes('"event":"circuit"') && l.includes('"state":"closed"')).length;
    const closedBefore = closedLogs();
    const resumedAt = performance.now();
    vault.resume();
    await eventually(async () => (await circuit(signet)) === 0, 30_000, 'the circuit closed (0)');
    const closedAfterMs = performance.now() - resumedAt;
    process.stderr.write(`breaker: circuit closed by the probe ${Math.round(closedAfterMs)} ms after Vault resumed (interval ${healthIntervalMs} ms)\n`);
    // No sign was sent since: nothing but the probe could have closed it.
    assert.equal(proxy.seen(SIGN_CALL), onWire, 'no sign call reached Vault');
    assert.equal(closedLogs(), closedBefore + 1, 'one "signing resumed" log line');
    assert.equal(await scrape(signet, 'signet_vault_up'), 1);
    // Within one probe interval (plus the probe's own answer: a probe out when Vault resumes is answered then), with a
    // margin of 2 s for a loaded 2-core CI, where a resumed Vault and this process may each wait for a core.
    assert.ok(closedAfterMs < healthIntervalMs + 2000, `closed ${Math.round(closedAfterMs)} ms after Vault resumed`);
    const signed = await postSign(signet, '/v1/sign/app', { claims: {} });
    assert.equal(signed.status, 200, JSON.stringify(signed.body));
  });
});
