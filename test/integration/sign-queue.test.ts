// signet_sign_queue_length: the sign requests waiting for a Vault call (not those in a call out to Vault), read at
// known points against a real Vault paused with SIGSTOP. One item per call (max_batch_size 1), so each call out
// holds exactly one request; a pass-through TCP proxy counts the calls that left for Vault. With N signs sent:
// queue length = N - calls out, while Vault is paused; 0 once it answers and every sign has its token.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { postSign } from '../harness/post-sign.ts';
import { metricValue } from '../harness/metrics.ts';
import { eventually, startSignet, type TestSignet } from '../harness/signet.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const SIGN_CALL = /^POST \/v1\/transit\/sign\/app /;
const N = 8;

describe('signet_sign_queue_length against a paused real Vault', () => {
  let vault: TestVault;
  let proxy: TcpProxy;
  let signet: TestSignet;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ed25519');
    await vault.createKey('idle', 'ed25519');
    proxy = await startTcpProxy(vault.address);
    signet = await startSignet(vault, [{ name: 'app' }, { name: 'idle' }], {
      // A deadline far beyond the pause: every waiting sign must still be answered, none shed.
      config: { vault: { address: proxy.address, sign_timeout: '30s' } },
      batcher: { maxBatchSize: 1, maxInFlight: 1 },
      // No probe during the test: a probe timing out on the paused Vault changes nothing here, but keeps it quiet.
      healthIntervalMs: 3_600_000,
    });
    await signet.ready(15_000);
  });

  after(async () => {
    vault?.resume();
    await signet?.close();
    await proxy?.close();
    await vault?.stop();
  });

  test(`${N} signs while Vault is paused: the queue length is ${N} minus the calls out, then 0`, async () => {
    const warm = await postSign(signet, '/v1/sign/app', { claims: {} });
    assert.equal(warm.status, 200, JSON.stringify(warm.body));
    const queue = async (key = 'app') => metricValue((await signet.get('/metrics')).text, 'signet_sign_queue_length', { key });
    assert.equal(await queue(), 0);
    const onWire = proxy.seen(SIGN_CALL);
    vault.pause();
    const answers = Promise.all(Array.from({ length: N }, (_, i) => postSign(signet, '/v1/sign/app', { claims: { sub: `s${i}` } })));
    // Every sign arrived once the waiting ones and those out add up to N (a gauge that also counted the calls out
    // would exceed N, one that counted nothing would never get there).
    const out = () => proxy.seen(SIGN_CALL) - onWire;
    const waiting = await eventually(async () => {
      const q = await queue();
      return q + out() === N ? q : undefined;
    }, 20_000, `queue length + calls out = ${N}`);
    // max_in_flight 1: one call out, the other signs wait; and nothing moves while Vault is paused.
    assert.equal(out(), 1);
    assert.equal(waiting, N - 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await queue(), N - 1, 'still waiting 300 ms later');
    assert.equal(out(), 1);
    assert.equal(metricValue((await signet.get('/metrics')).text, 'signet_vault_sign_calls_in_flight', { key: 'app' }), 1);
    assert.equal(await queue('idle'), 0, 'another key\'s queue is its own');
    vault.resume();
    const done = await answers;
    for (const answer of done) assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(out(), N, 'one call per sign (max_batch_size 1)');
    assert.equal(await queue(), 0);
  });
});
