// The batcher's calls in flight against a real Vault (issue 11 §2b, issue 14): callers' batches in a backlog leave
// as full batches, several at once (more than the one partial call), within the adaptive limit and under
// batching.max_in_flight; every token verifies; and one partial call in flight (the default) gathers single signs
// into larger batches than two do, i.e. fewer Vault calls for the same tokens.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { metricValue } from '../harness/metrics.ts';
import { startSignet, type TestSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

/** The batch-size histogram's sum and count for a key (0 before the first sign). */
async function batchTotals(signet: TestSignet, key: string): Promise<{ sum: number; count: number }> {
  const text = (await signet.get('/metrics')).text;
  return { sum: metricValue(text, 'signet_sign_batch_size_sum', { key }), count: metricValue(text, 'signet_sign_batch_size_count', { key }) };
}

/** `clients` loops sending `body` to /v1/sign/`key` for `ms`; returns every answer's status and body. */
async function load(signet: TestSignet, key: string, clients: number, ms: number, body: () => unknown) {
  const answers: Array<{ status: number; body: any }> = [];
  const until = performance.now() + ms;
  await Promise.all(Array.from({ length: clients }, async () => {
    while (performance.now() < until) answers.push(await signet.post(`/v1/sign/${key}`, body()));
  }));
  return answers;
}

describe('adaptive calls in flight against a real Vault', () => {
  let vault: TestVault;
  let signet: TestSignet;
  before(async () => {
    vault = await startVault();
    await vault.createKey('es', 'ecdsa-p256');
    signet = await startSignet(vault, [{ name: 'es' }], { config: { log_level: 'info', batching: { max_in_flight: 6 } } });
    await signet.ready(15_000);
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  test('a backlog of callers\' batches leaves as full batches, several at once, never past max_in_flight; every token verifies', async () => {
    const batch = { batch_input: Array.from({ length: 64 }, (_, i) => ({ claims: { sub: `user-${i}` } })) };
    const before = await batchTotals(signet, 'es');
    const samples: Array<{ inFlight: number; limit: number }> = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        // One scrape for both gauges, so the pair is from the same moment.
        const text = (await signet.get('/metrics')).text;
        samples.push({ inFlight: metricValue(text, 'signet_vault_sign_calls_in_flight', { key: 'es' }), limit: metricValue(text, 'signet_vault_sign_calls_limit', { key: 'es' }) });
        await sleep(20);
      }
    })();
    const answers = await load(signet, 'es', 12, 3000, () => batch);
    sampling = false;
    await sampler;
    const after = await batchTotals(signet, 'es');

    assert.ok(answers.length >= 12, `${answers.length} batches answered`);
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [200]);
    const tokens = answers.flatMap((a) => a.body.batch_results.map((r: { token?: string; error?: string }) => {
      assert.ok(r.token, `every item signed (${r.error})`);
      return r.token!;
    }));
    const mean = (after.sum - before.sum) / (after.count - before.count);
    const most = Math.max(...samples.map((s) => s.inFlight));
    const limits = samples.map((s) => s.limit);
    process.stderr.write(`adaptive: ${tokens.length} tokens in ${answers.length} batches, mean Vault batch ${mean.toFixed(1)}, `
      + `calls in flight at most ${most}, limit ${Math.min(...limits)}-${Math.max(...limits)} over ${samples.length} samples\n`);
    // Caller batches of 64 reach Vault whole (a partial batch only when a batch is split at the switch of lanes).
    assert.ok(mean >= 60, `mean Vault batch ${mean.toFixed(1)} items`);
    // Full batches do not wait for the one partial slot: more than one call was out at once.
    assert.ok(most >= 2, `calls in flight reached ${most}`);
    assert.ok(most <= 6, `never past batching.max_in_flight (6): ${most}`);
    assert.ok(limits.every((l) => l >= 2 && l <= 6), `the limit stays within [2, max_in_flight]: ${Math.min(...limits)}-${Math.max(...limits)}`);

    const jwks = createLocalJWKSet((await signet.get('/.well-known/jwks.json')).body);
    for (const token of [tokens[0]!, tokens[Math.floor(tokens.length / 2)]!, tokens.at(-1)!]) {
      await jwtVerify(token, jwks, { issuer: 'https://issuer.test' });
    }
  });
});

describe('partial_in_flight: one partial call gathers more signs per Vault call than two', () => {
  let vault: TestVault;
  const signets: TestSignet[] = [];
  before(async () => {
    vault = await startVault();
    await vault.createKey('es', 'ecdsa-p256');
    for (const partial of [1, 2]) {
      const signet = await startSignet(vault, [{ name: 'es' }], { config: { log_level: 'info', batching: { partial_in_flight: partial } } });
      await signet.ready(15_000);
      signets.push(signet);
    }
  });
  after(async () => {
    for (const signet of signets) await signet.close();
    await vault?.stop();
  });

  test('48 clients signing one token each: the mean Vault batch is larger with partial_in_flight 1 (the default)', async () => {
    const means: number[] = [];
    // Alternated twice, so that a slower moment of the machine does not favour one of them.
    const sums = [{ sum: 0, count: 0 }, { sum: 0, count: 0 }];
    for (let round = 0; round < 2; round++) {
      for (const [i, signet] of signets.entries()) {
        const before = await batchTotals(signet, 'es');
        const answers = await load(signet, 'es', 48, 1500, () => ({ claims: { sub: 'one' } }));
        assert.deepEqual([...new Set(answers.map((a) => a.status))], [200]);
        const after = await batchTotals(signet, 'es');
        sums[i]!.sum += after.sum - before.sum;
        sums[i]!.count += after.count - before.count;
      }
    }
    for (const s of sums) means.push(s.sum / s.count);
    process.stderr.write(`partial_in_flight: mean Vault batch ${means[0]!.toFixed(1)} (1) vs ${means[1]!.toFixed(1)} (2) at 48 clients\n`);
    // When the machine is so busy that Vault is the bottleneck either way, every call leaves full (64) with both
    // settings and there is nothing left to gather; otherwise one partial call must gather more.
    const bothFull = means.every((m) => m >= 60);
    assert.ok(means[0]! > means[1]! || bothFull, `partial_in_flight 1 batches ${means[0]!.toFixed(1)} items per call, 2 batches ${means[1]!.toFixed(1)}`);
  });
});
