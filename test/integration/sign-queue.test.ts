// signet_sign_queue_length: the sign requests waiting for a Vault call (not those in a call out to Vault), read at
// known points against a real Vault paused with SIGSTOP; a pass-through TCP proxy counts the calls that left for
// Vault. N signs sent one by one while Vault is paused: the first leaves at once, alone, and the other N - 1 wait
// (max_in_flight 1 with one item per call; or the default batching, where one partial batch is out at a time and
// the rest gather behind it); 0 once Vault answers and every sign has its token. And batching.min_in_flight, set in
// the configuration document: callers' full batches at the paused Vault leave that many calls at once (2 by default),
// and the batches deeper than that round leave merged into one call of up to max_batch_size once Vault answers.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { metricValue } from '../harness/metrics.ts';
import { eventually, postSign, startSignet, type TestSignet } from '../harness/signet.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const SIGN_CALL = /^POST \/v1\/transit\/sign\/app /;
const N = 8;

describe('signet_sign_queue_length against a paused real Vault', () => {
  let vault: TestVault;
  let proxy: TcpProxy;
  let signet: TestSignet | undefined;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ed25519');
    await vault.createKey('idle', 'ed25519');
    proxy = await startTcpProxy(vault.address);
  });

  afterEach(async () => {
    vault.resume();
    await signet?.close();
    signet = undefined;
  });

  after(async () => {
    await proxy?.close();
    await vault?.stop();
  });

  for (const { what, batcher, callsAfter } of [
    { what: 'one item per call, max_in_flight 1', batcher: { maxBatchSize: 1, maxInFlight: 1 }, callsAfter: N },
    { what: 'default batching', batcher: {}, callsAfter: 2 },
  ]) {
    test(`${what}: ${N} signs while Vault is paused make the queue length ${N - 1} (one call out), then 0`, async () => {
      signet = await startSignet(vault, [{ name: 'app' }, { name: 'idle' }], {
        // A deadline far beyond the pause: every waiting sign must still be answered, none shed.
        config: { vault: { address: proxy.address, sign_timeout: '30s' } },
        batcher,
        // No probe during the test: a probe timing out on the paused Vault changes nothing here, but keeps it quiet.
        healthIntervalMs: 3_600_000,
      });
      await signet.ready(15_000);
      const s = signet;
      const warm = await postSign(s, '/v1/sign/app', { claims: {} });
      assert.equal(warm.status, 200, JSON.stringify(warm.body));
      const read = async (name: string, key = 'app') => metricValue((await s.get('/metrics')).text, name, { key });
      const queue = (key = 'app') => read('signet_sign_queue_length', key);
      assert.equal(await queue(), 0);
      const onWire = proxy.seen(SIGN_CALL);
      const out = () => proxy.seen(SIGN_CALL) - onWire;
      vault.pause();
      // The first sign, alone: it leaves at once and waits at the paused Vault.
      const answers = [postSign(s, '/v1/sign/app', { claims: { sub: 's0' } })];
      await eventually(() => out() === 1, 20_000, 'the first sign\'s call on the wire');
      assert.equal(await queue(), 0, 'a sign out at Vault is not waiting');
      for (let i = 1; i < N; i++) answers.push(postSign(s, '/v1/sign/app', { claims: { sub: `s${i}` } }));
      await eventually(async () => (await queue()) === N - 1, 20_000, `queue length ${N - 1}`);
      // Nothing moves while Vault is paused: the same 300 ms later, no new call.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await queue(), N - 1, 'still waiting 300 ms later');
      assert.equal(out(), 1);
      assert.equal(await read('signet_vault_sign_calls_in_flight'), 1);
      assert.equal(await queue('idle'), 0, 'another key\'s queue is its own');
      vault.resume();
      for (const answer of await Promise.all(answers)) assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(out(), callsAfter);
      assert.equal(await queue(), 0);
      assert.equal(await read('signet_vault_sign_calls_in_flight'), 0);
    });
  }

  // With the default floor the four batches left waiting are deeper than one round of the limit's two calls: once
  // Vault answers they leave merged, shared among the calls that may leave then (one or two: the limit may have
  // grown by one with the first answer).
  for (const { minInFlight, callsOut } of [{ minInFlight: undefined, callsOut: 2 }, { minInFlight: 6, callsOut: 6 }]) {
    test(`batching.min_in_flight ${minInFlight ?? '(default)'}: 6 callers' batches of 64 at a paused Vault leave as ${callsOut} calls at once`, async () => {
      signet = await startSignet(vault, [{ name: 'app' }, { name: 'idle' }], {
        // From the configuration document, as an operator sets it; lone_batch_calls 1 so the first batch leaves whole.
        config: {
          vault: { address: proxy.address, sign_timeout: '30s' },
          batching: { lone_batch_calls: 1, ...(minInFlight !== undefined && { min_in_flight: minInFlight }) },
        },
        healthIntervalMs: 3_600_000,
      });
      await signet.ready(15_000);
      const s = signet;
      const warm = await postSign(s, '/v1/sign/app', { claims: {} });
      assert.equal(warm.status, 200, JSON.stringify(warm.body));
      assert.equal(await metricValue((await s.get('/metrics')).text, 'signet_vault_sign_calls_limit', { key: 'app' }), callsOut);
      const onWire = proxy.seen(SIGN_CALL);
      const out = () => proxy.seen(SIGN_CALL) - onWire;
      vault.pause();
      const batch = (n: number) => ({ batch_input: Array.from({ length: 64 }, (_, i) => ({ claims: { sub: `c${n}-${i}` } })) });
      const answers = Array.from({ length: 6 }, (_, n) => postSign(s, '/v1/sign/app', batch(n)));
      await eventually(() => out() === callsOut, 20_000, `${callsOut} calls on the wire`);
      // The others wait in Signet while Vault is paused: the same 300 ms later, no new call.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(out(), callsOut);
      vault.resume();
      for (const answer of await Promise.all(answers)) {
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        const results = answer.body.batch_results as Array<{ token?: string }>;
        assert.equal(results.length, 64);
        assert.ok(results.every((r) => typeof r.token === 'string'), 'every item a token');
      }
      const text = (await s.get('/metrics')).text;
      const larger = metricValue(text, 'signet_sign_batch_size_count', { key: 'app' }) - metricValue(text, 'signet_sign_batch_size_bucket', { key: 'app', le: '64' });
      if (minInFlight) {
        assert.equal(out(), 6, 'one full call per caller batch');
        assert.equal(larger, 0);
      } else {
        assert.ok(out() === 3 || out() === 4, `two full batches, then the other four merged into one or two calls: ${out()}`);
        assert.equal(larger, out() - 2, 'the merged calls carry more than 64 items each');
      }
    });
  }
});
