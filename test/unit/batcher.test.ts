import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { SignetError, VaultUnavailableError } from '../../src/errors.ts';
import { algSpec } from '../../src/jwt/algorithms.ts';
import { DEFAULT_BATCHER, SignBatcher, itemCostMs, type BatcherOptions, type LaneKey } from '../../src/signer/batcher.ts';
import type { ItemResult } from '../../src/vault/transit.ts';

interface Call {
  lane: LaneKey;
  inputs: string[];
  /** Answers every item with a signature derived from its input. */
  ok(): Promise<void>;
  answer(results: ItemResult[]): Promise<void>;
  fail(error: Error): Promise<void>;
}

/** An in-memory Vault: records each batch call and lets the test answer it when it wants. */
function fakeVault() {
  const calls: Call[] = [];
  const send = (lane: LaneKey, inputs: string[]): Promise<ItemResult[]> => {
    const { promise, resolve, reject } = Promise.withResolvers<ItemResult[]>();
    const settle = async (fn: () => void): Promise<void> => {
      fn();
      // Let the batcher's continuations run: it pumps the next batch, then settles the waiters (in a setImmediate
      // of its own when a call left: behind that call's write).
      await tick();
      await tick();
    };
    calls.push({
      lane,
      inputs: [...inputs],
      ok: () => settle(() => resolve(inputs.map((input) => ({ signature: `vault:v${lane.version}:sig(${input})` })))),
      answer: (results) => settle(() => resolve(results)),
      fail: (error) => settle(() => reject(error)),
    });
    return promise;
  };
  return { calls, send };
}

function lane(keyType = 'ecdsa-p256', version = 1, name = 'k'): LaneKey {
  return { name, version, keyType, spec: algSpec(keyType.startsWith('rsa') ? 'RS256' : 'ES256') };
}

function options(overrides: Partial<BatcherOptions> = {}): BatcherOptions {
  return { ...DEFAULT_BATCHER, ...overrides };
}

/** Starts a request whose outcome the test does not look at (a later rejection must not go unhandled). */
function fire(promise: Promise<unknown>): void {
  promise.catch(() => {});
}

/**
 * A caller's batch of `items` through together(): what `start` returns for each index (a sign, or undefined where the
 * claims policy would refuse the item), once every item has started (a spread batch's items after its first piece
 * start from a later turn).
 */
function batchOf<T>(batcher: SignBatcher, items: number, start: (index: number) => T | undefined): Promise<T[]> {
  const started: T[] = [];
  const { promise, resolve, reject } = Promise.withResolvers<T[]>();
  batcher.together(items, (index) => {
    const sign = start(index);
    if (sign !== undefined) started.push(sign);
  }, (error) => (error === undefined ? resolve(started) : reject(error)));
  return promise;
}

/** Tracks whether a promise has settled, without leaving a rejection unhandled. */
function track<T>(promise: Promise<T>) {
  const state: { settled: boolean; value?: T; error?: unknown } = { settled: false };
  promise.then((value) => { state.settled = true; state.value = value; }, (error: unknown) => { state.settled = true; state.error = error; });
  return state;
}

describe('SignBatcher: low load', () => {
  test('a lone request is sent at once, alone, and resolves with its signature', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options(), vault.send);
    const result = batcher.sign(lane(), 'aW5wdXQ=');
    assert.equal(vault.calls.length, 1, 'sent synchronously, no timer');
    assert.deepEqual(vault.calls[0]!.inputs, ['aW5wdXQ=']);
    await vault.calls[0]!.ok();
    assert.equal(await result, 'vault:v1:sig(aW5wdXQ=)');
  });

  test('sequential requests each go alone', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options(), vault.send);
    for (let i = 0; i < 5; i++) {
      const result = batcher.sign(lane(), `in${i}`);
      await vault.calls[i]!.ok();
      assert.equal(await result, `vault:v1:sig(in${i})`);
    }
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [1, 1, 1, 1, 1]);
  });

  test('up to partialInFlight requests go out at once, each alone', () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ maxInFlight: 3, partialInFlight: 3 }), vault.send);
    for (const input of ['a', 'b', 'c']) fire(batcher.sign(lane(), input));
    assert.deepEqual(vault.calls.map((c) => c.inputs), [['a'], ['b'], ['c']]);
    assert.equal(batcher.queued('k'), 0);
  });
});

describe('SignBatcher: under load', () => {
  test('while partialInFlight calls are out, later requests wait and leave together when a call returns', async () => {
    const vault = fakeVault();
    const observed: Array<[string, number]> = [];
    const batcher = new SignBatcher(options({ maxInFlight: 2, partialInFlight: 2 }), vault.send, (key, size) => observed.push([key, size]));
    const first = [batcher.sign(lane(), 'a'), batcher.sign(lane(), 'b')];
    const waiting = ['c', 'd', 'e', 'f'].map((input) => batcher.sign(lane(), input));
    assert.equal(vault.calls.length, 2);
    assert.equal(batcher.queued('k'), 4);

    await vault.calls[0]!.ok();
    assert.equal(vault.calls.length, 3, 'one batch call when one call returned');
    assert.deepEqual(vault.calls[2]!.inputs, ['c', 'd', 'e', 'f'], 'in arrival order');
    assert.equal(batcher.queued('k'), 0);
    assert.deepEqual(observed, [['k', 1], ['k', 1], ['k', 4]]);

    await vault.calls[1]!.ok();
    await vault.calls[2]!.ok();
    assert.deepEqual(await Promise.all(first), ['vault:v1:sig(a)', 'vault:v1:sig(b)']);
    assert.deepEqual(await Promise.all(waiting), ['c', 'd', 'e', 'f'].map((i) => `vault:v1:sig(${i})`), 'each caller gets its own item');
  });

  test('a batch is bounded by maxBatchSize; the rest leaves in later batches', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ maxInFlight: 1, maxBatchSize: 3 }), vault.send);
    const all = Array.from({ length: 8 }, (_, i) => batcher.sign(lane(), `i${i}`));
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [1]);
    for (let n = 0; n < 4; n++) await vault.calls[n]!.ok();
    assert.deepEqual(vault.calls.map((c) => c.inputs), [['i0'], ['i1', 'i2', 'i3'], ['i4', 'i5', 'i6'], ['i7']]);
    assert.equal((await Promise.all(all)).length, 8);
  });

  test('when several calls are free, several batches leave at once', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ maxInFlight: 3, partialInFlight: 3, maxBatchSize: 2 }), vault.send);
    for (let i = 0; i < 3; i++) fire(batcher.sign(lane(), `first${i}`));
    for (let i = 0; i < 5; i++) fire(batcher.sign(lane(), `w${i}`));
    // All three calls return: each one frees a slot that the waiting requests fill, at most 2 per batch.
    await Promise.all(vault.calls.slice(0, 3).map((c) => c.ok()));
    assert.deepEqual(vault.calls.slice(3).map((c) => c.inputs), [['w0', 'w1'], ['w2', 'w3'], ['w4']]);
  });

  const costCases: Array<[string, number]> = [
    ['rsa-2048', 16], // floor(25 / 1.5)
    ['rsa-3072', 5], // floor(25 / 4.5)
    ['rsa-4096', 2], // floor(25 / 10)
    ['ecdsa-p384', 64], // floor(25 / 0.3) = 83, capped by maxBatchSize 64
    ['ed25519', 64],
  ];
  for (const [keyType, size] of costCases) {
    test(`a ${keyType} batch is bounded by maxBatchCostMs / itemCostMs: ${size} items`, async () => {
      const vault = fakeVault();
      const batcher = new SignBatcher(options({ maxInFlight: 1, maxBatchSize: 64, maxBatchCostMs: 25 }), vault.send);
      for (let i = 0; i < 1 + size + 1; i++) fire(batcher.sign(lane(keyType), `i${i}`));
      await vault.calls[0]!.ok();
      assert.equal(vault.calls[1]!.inputs.length, size);
      await vault.calls[1]!.ok();
      assert.equal(vault.calls[2]!.inputs.length, 1, "the rest in the next batch");
    });
  }

  test('item costs: RSA grows with the modulus; unknown types are cheap', () => {
    assert.equal(itemCostMs('rsa-2048'), 1.5);
    assert.ok(itemCostMs('rsa-2048') < itemCostMs('rsa-3072') && itemCostMs('rsa-3072') < itemCostMs('rsa-4096'));
    assert.ok(itemCostMs('ed25519') < itemCostMs('rsa-2048'));
    assert.ok(itemCostMs('hmac') > 0);
  });

  test('an item costlier than the whole budget still goes, one per batch', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ maxInFlight: 1, maxBatchCostMs: 5 }), vault.send);
    for (let i = 0; i < 3; i++) fire(batcher.sign(lane('rsa-4096'), `i${i}`));
    await vault.calls[0]!.ok();
    await vault.calls[1]!.ok();
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [1, 1, 1]);
  });

  test('each (key, version) is its own lane: no shared batches, separate in-flight limits', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ maxInFlight: 1 }), vault.send);
    const v1 = batcher.sign(lane('ecdsa-p256', 1), 'a');
    const v2 = batcher.sign(lane('ecdsa-p256', 2), 'b');
    const other = batcher.sign(lane('ecdsa-p256', 1, 'other'), 'c');
    assert.equal(vault.calls.length, 3, 'none waits for another lane');
    assert.deepEqual(vault.calls.map((c) => [c.lane.name, c.lane.version]), [['k', 1], ['k', 2], ['other', 1]]);
    fire(batcher.sign(lane('ecdsa-p256', 1), 'd'));
    fire(batcher.sign(lane('ecdsa-p256', 2), 'e'));
    assert.equal(batcher.queued('k'), 2, 'queued counts every version of a key');
    assert.equal(batcher.queued('other'), 0);
    await vault.calls[0]!.ok();
    assert.deepEqual(vault.calls[3]!.inputs, ['d']);
    assert.equal(vault.calls[3]!.lane.version, 1);
    await Promise.all(vault.calls.slice(1).map((c) => c.ok()));
    assert.equal(await v1, 'vault:v1:sig(a)');
    assert.equal(await v2, 'vault:v2:sig(b)');
    assert.equal(await other, 'vault:v1:sig(c)');
  });
});

describe('SignBatcher: errors', () => {
  test('a per-item error rejects only that item’s promise, with a 502 naming Vault’s refusal', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ maxInFlight: 1 }), vault.send);
    fire(batcher.sign(lane(), 'first'));
    const a = batcher.sign(lane(), 'a');
    const b = track(batcher.sign(lane(), 'b'));
    const c = batcher.sign(lane(), 'c');
    await vault.calls[0]!.ok();
    await vault.calls[1]!.answer([{ signature: 'vault:v1:A' }, { error: 'invalid key version' }, { signature: 'vault:v1:C' }]);
    assert.equal(await a, 'vault:v1:A');
    assert.equal(await c, 'vault:v1:C');
    assert.ok(b.error instanceof SignetError);
    assert.equal(b.error.status, 502);
    assert.match(b.error.message, /Vault refused to sign: invalid key version/);
  });

  test('a very long Vault item error is cut short in the message', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options(), vault.send);
    const result = track(batcher.sign(lane(), 'a'));
    await vault.calls[0]!.answer([{ error: 'x'.repeat(10_000) }]);
    assert.ok(result.error instanceof Error);
    assert.ok(result.error.message.length < 300, `${result.error.message.length} characters`);
  });

  test('a whole-batch rejection rejects only that batch’s requests, with the same error', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ maxInFlight: 2, partialInFlight: 2 }), vault.send);
    const a = track(batcher.sign(lane(), 'a'));
    const b = batcher.sign(lane(), 'b');
    const waiting = [track(batcher.sign(lane(), 'c')), track(batcher.sign(lane(), 'd'))];
    const outage = new VaultUnavailableError('sign', 'connection refused');
    await vault.calls[0]!.fail(outage);
    assert.equal(a.error, outage);
    assert.equal(vault.calls.length, 3, 'the waiting requests still go out');
    await vault.calls[2]!.fail(new Error('batch 3 failed'));
    for (const w of waiting) assert.match(String(w.error), /batch 3 failed/);
    await vault.calls[1]!.ok();
    assert.equal(await b, 'vault:v1:sig(b)', 'the other batch is unaffected');
  });

  test('after a failure the lane keeps working: the next request goes out at once', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ maxInFlight: 1 }), vault.send);
    const failed = track(batcher.sign(lane(), 'a'));
    await vault.calls[0]!.fail(new Error('down'));
    assert.ok(failed.error);
    const next = batcher.sign(lane(), 'b');
    assert.equal(vault.calls.length, 2);
    await vault.calls[1]!.ok();
    assert.equal(await next, 'vault:v1:sig(b)');
  });

  test('an answer with fewer results than inputs rejects the missing items instead of leaving them waiting', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ maxInFlight: 1 }), vault.send);
    fire(batcher.sign(lane(), 'first'));
    const a = track(batcher.sign(lane(), 'a'));
    const b = track(batcher.sign(lane(), 'b'));
    await vault.calls[0]!.ok();
    await vault.calls[1]!.answer([{ signature: 'vault:v1:A' }]);
    assert.equal(a.value, 'vault:v1:A');
    assert.ok(b.settled, 'the second request must not wait forever');
    assert.ok(b.error instanceof SignetError);
    assert.equal(b.error.status, 502);
    const next = batcher.sign(lane(), 'c');
    assert.equal(vault.calls.length, 3, 'the lane is free again');
    await vault.calls[2]!.ok();
    assert.equal(await next, 'vault:v1:sig(c)');
  });

  test('a send that throws synchronously rejects its batch and does not wedge the lane', async () => {
    let calls = 0;
    const batcher = new SignBatcher(options({ maxInFlight: 1 }), async (_lane, inputs) => inputs.map((i) => ({ signature: `vault:v1:${i}` })));
    const throwing = new SignBatcher(options({ maxInFlight: 1 }), (_lane, inputs) => {
      calls++;
      if (calls === 1) throw new Error('bug in send');
      return Promise.resolve(inputs.map((i) => ({ signature: `vault:v1:${i}` })));
    });
    assert.equal(await batcher.sign(lane(), 'x'), 'vault:v1:x');
    const first = throwing.sign(lane(), 'a');
    await assert.rejects(first, /bug in send/);
    assert.equal(await throwing.sign(lane(), 'b'), 'vault:v1:b');
  });

  test('a full queue refuses at once with a 503 VaultUnavailableError, and accepts again once it drains', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ maxInFlight: 1, maxQueue: 2 }), vault.send);
    fire(batcher.sign(lane(), 'a')); // goes out
    fire(batcher.sign(lane(), 'b')); // waits
    fire(batcher.sign(lane(), 'c')); // waits: queue full
    const refused = track(batcher.sign(lane(), 'd'));
    await tick();
    assert.ok(refused.settled, 'refused without waiting for Vault');
    assert.ok(refused.error instanceof VaultUnavailableError);
    assert.equal(refused.error.status, 503);
    assert.ok(refused.error.retryAfterSeconds >= 1);
    assert.match(refused.error.message, /queue .*"k".* full/);
    assert.equal(vault.calls.length, 1);
    assert.equal(batcher.queued('k'), 2, 'the refused request is not queued');

    await vault.calls[0]!.ok();
    const accepted = batcher.sign(lane(), 'e');
    assert.equal(batcher.queued('k'), 1);
    await vault.calls[1]!.ok();
    assert.deepEqual(vault.calls[2]!.inputs, ['e']);
    await vault.calls[2]!.ok();
    assert.equal(await accepted, 'vault:v1:sig(e)');
  });

  test('the queue limit is per lane: a full lane refuses while other lanes accept', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ maxInFlight: 1, maxQueue: 1 }), vault.send);
    fire(batcher.sign(lane('ecdsa-p256', 1), 'a'));
    fire(batcher.sign(lane('ecdsa-p256', 1), 'b'));
    // The same lane is full now: refused.
    await assert.rejects(batcher.sign(lane('ecdsa-p256', 1), 'b2'), (error: unknown) =>
      error instanceof VaultUnavailableError && error.reason === 'overloaded' && /sign queue of key "k" is full/.test(error.message));
    // Another version and another key each have their own queue: one call out each, and one may wait.
    const otherVersion = track(batcher.sign(lane('ecdsa-p256', 2), 'c'));
    const otherKey = track(batcher.sign(lane('ecdsa-p256', 1, 'other'), 'd'));
    const waitingOther = track(batcher.sign(lane('ecdsa-p256', 1, 'other'), 'e'));
    await tick();
    assert.equal(vault.calls.length, 3);
    for (const state of [otherVersion, otherKey, waitingOther]) assert.equal(state.settled, false, 'accepted, not refused');
    assert.equal(batcher.queued('other'), 1);
  });
});

describe('SignBatcher: batching disabled', () => {
  test('every request goes alone, even under load', async () => {
    const vault = fakeVault();
    const observed: number[] = [];
    const batcher = new SignBatcher(options({ enabled: false, maxInFlight: 2 }), vault.send, (_k, size) => observed.push(size));
    const results = Array.from({ length: 10 }, (_, i) => batcher.sign(lane(), `i${i}`));
    assert.equal(vault.calls.length, 10, 'no waiting for a free call at ordinary concurrency');
    await Promise.all(vault.calls.map((c) => c.ok()));
    assert.deepEqual(await Promise.all(results), Array.from({ length: 10 }, (_, i) => `vault:v1:sig(i${i})`));
    assert.ok(vault.calls.every((c) => c.inputs.length === 1));
    assert.ok(observed.every((size) => size === 1));
  });

  test('beyond its in-flight bound, requests still leave one by one as calls return', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ enabled: false, maxInFlight: 1 }), vault.send);
    const results = Array.from({ length: 70 }, (_, i) => batcher.sign(lane(), `i${i}`));
    // Batching off raises the in-flight bound to 64 (one call per sign): 64 go at once, 6 wait.
    assert.equal(vault.calls.length, 64);
    await vault.calls[0]!.ok();
    assert.equal(vault.calls.length, 65, 'one call returned, one waiting sign left');
    for (let n = 1; n < 70; n++) await vault.calls[n]!.ok();
    assert.equal(vault.calls.length, 70);
    assert.ok(vault.calls.every((c) => c.inputs.length === 1));
    assert.equal((await Promise.all(results)).length, 70);
  });

  test('the options passed in are not modified', () => {
    const given = options({ enabled: false });
    const copy = { ...given };
    new SignBatcher(given, fakeVault().send);
    assert.deepEqual(given, copy);
  });
});

describe('SignBatcher: lanes and shared bounds (hardening)', () => {
  test('a drained lane never deletes a newer lane that took its id (fake timers: the old sweeper ticks late)', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval', 'setTimeout'] });
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ maxInFlight: 1, maxWaitMs: 60_000 }), vault.send);
    // Lane 1: one call out, one waiting (its sweeper starts), then both answered: the lane drains.
    const a1 = batcher.sign(lane(), 'a1');
    const a2 = batcher.sign(lane(), 'a2');
    await vault.calls[0]!.ok();
    await vault.calls[1]!.ok();
    assert.deepEqual(await Promise.all([a1, a2]), ['vault:v1:sig(a1)', 'vault:v1:sig(a2)']);
    // Lane 2 under the same (key, version): one call out, one waiting.
    const b1 = track(batcher.sign(lane(), 'b1'));
    const b2 = track(batcher.sign(lane(), 'b2'));
    assert.equal(vault.calls.length, 3);
    // The first lane's sweeper (if still running) ticks now: it must not remove lane 2.
    t.mock.timers.tick(200);
    const b3 = track(batcher.sign(lane(), 'b3'));
    assert.equal(vault.calls.length, 3, 'max_in_flight 1 holds: b3 waits behind b1 instead of opening a second call');
    assert.equal(batcher.queued('k'), 2, 'b2 and b3 are counted as waiting');
    assert.equal(batcher.inFlight('k'), 1);
    await vault.calls[2]!.ok();
    assert.equal(vault.calls.length, 4);
    assert.deepEqual(vault.calls[3]!.inputs, ['b2', 'b3'], 'the waiting signs leave together in one batch');
    await vault.calls[3]!.ok();
    assert.equal(b1.value, 'vault:v1:sig(b1)');
    assert.equal(b2.value, 'vault:v1:sig(b2)');
    assert.equal(b3.value, 'vault:v1:sig(b3)');
    assert.equal(batcher.queued('k'), 0);
    assert.equal(batcher.pendingBytes(), 0, 'every settled sign released its bytes');
  });

  test('max_pending_bytes bounds the signs held across every key and version, and frees as they settle', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ maxInFlight: 1, maxPendingBytes: 10_000 }), vault.send);
    const input = 'x'.repeat(3000);
    const held = [
      batcher.sign(lane('ecdsa-p256', 1, 'k1'), input),
      batcher.sign(lane('ecdsa-p256', 2, 'k1'), input),
      batcher.sign(lane('ecdsa-p256', 1, 'k2'), input),
    ];
    assert.equal(batcher.pendingBytes(), 9000);
    await assert.rejects(batcher.sign(lane('ecdsa-p256', 1, 'k3'), input), (error: unknown) =>
      error instanceof VaultUnavailableError && error.reason === 'overloaded' && /Signet is overloaded/.test(error.message)
      && /batching\.max_pending_bytes/.test(error.message));
    await vault.calls[0]!.ok();
    await held[0];
    assert.equal(batcher.pendingBytes(), 6000);
    const next = batcher.sign(lane('ecdsa-p256', 1, 'k3'), input);
    assert.equal(batcher.pendingBytes(), 9000, 'room again once a sign settled');
    await Promise.all(vault.calls.slice(1).map((c) => c.ok()));
    await Promise.all([...held, next]);
    assert.equal(batcher.pendingBytes(), 0);
  });

  test('in flight, each waiter is answered at its own deadline; the Vault call is not cut short for it', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval', 'setTimeout'] });
    const deadlines: number[] = [];
    const vault = fakeVault();
    const send = (l: LaneKey, inputs: string[], deadline: number) => {
      deadlines.push(deadline);
      return vault.send(l, inputs);
    };
    const batcher = new SignBatcher(options({ maxInFlight: 1, maxWaitMs: 1000 }), send);
    const first = track(batcher.sign(lane(), 'a'));
    const startedAt = performance.now();
    // The call was sent with the latest deadline of its batch: sign_timeout from its arrival.
    assert.ok(deadlines[0]! >= startedAt + 990, 'the call may run for the whole sign_timeout');
    // A fake clock cannot move performance.now(): wait for real until the deadline has passed, then fire the timer.
    while (performance.now() < startedAt + 1005) await new Promise((r) => setImmediate(r));
    t.mock.timers.tick(1010);
    await tick();
    assert.equal(first.settled, true);
    assert.ok(first.error instanceof VaultUnavailableError && /within sign_timeout/.test(first.error.message));
    // Vault's late answer settles nothing twice and frees the lane.
    await vault.calls[0]!.ok();
    assert.equal(batcher.inFlight('k'), 0);
    assert.equal(batcher.pendingBytes(), 0);
  });

  // Found by the soak test (seed 1484534306): during a Vault pause, signs queued behind the hung call were answered
  // "Signet is overloaded" (and counted as overload sheds) when the call failed at its deadline and the lane pumped.
  for (const [outcome, reason] of [['fails', 'unreachable'], ['answers', 'overloaded']] as const) {
    test(`a waiter that can no longer make it when the call ahead ${outcome} is answered as ${reason}`, async (t) => {
      t.mock.timers.enable({ apis: ['setInterval', 'setTimeout'] });
      const vault = fakeVault();
      const batcher = new SignBatcher(options({ maxInFlight: 1, maxWaitMs: 1000 }), vault.send);
      fire(batcher.sign(lane(), 'a'));
      const startedAt = performance.now();
      const queued = track(batcher.sign(lane(), 'b'));
      // Real time must pass for performance.now(); the fake clock holds the sweeper back, so the pump decides.
      while (performance.now() < startedAt + 1005) await new Promise((r) => setImmediate(r));
      if (outcome === 'fails') await vault.calls[0]!.fail(new VaultUnavailableError('sign', 'Vault timed out', 1, 'unreachable'));
      else await vault.calls[0]!.ok();
      await tick();
      assert.equal(vault.calls.length, 1, 'the expired waiter was not sent');
      assert.ok(queued.error instanceof VaultUnavailableError);
      assert.equal(queued.error.reason, reason);
      assert.match(queued.error.message, outcome === 'fails' ? /Vault is slow or away/ : /Signet is overloaded/);
    });
  }
});

describe('SignBatcher: a caller batch', () => {
  test('signs started inside together() leave together: one call of 62 (lone_batch_calls 1), not 1 + 1 + 60', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ loneBatchCalls: 1 }), vault.send);
    const results = await batchOf(batcher, 62, (i) => batcher.sign(lane(), `i${i}`));
    assert.equal(vault.calls.length, 1);
    assert.equal(vault.calls[0]!.inputs.length, 62);
    await vault.calls[0]!.ok();
    assert.equal((await Promise.all(results)).length, 62);
    // Outside together(), the first sign leaves at once (no added latency at low load), the rest gather behind it.
    const alone = Array.from({ length: 62 }, (_, i) => batcher.sign(lane(), `j${i}`));
    assert.deepEqual(vault.calls.slice(1).map((c) => c.inputs.length), [1]);
    await vault.calls[1]!.ok();
    assert.deepEqual(vault.calls.slice(1).map((c) => c.inputs.length), [1, 61]);
    await vault.calls[2]!.ok();
    assert.equal((await Promise.all(alone)).length, 62);
  });

  test('a lone caller batch (its key version idle) is spread over lone_batch_calls calls, each written before the next items are encoded', async () => {
    const vault = fakeVault();
    const observed: number[] = [];
    const order: string[] = [];
    // undici writes a request on a reused connection from a setImmediate: a turn queued when the call left stands for
    // that write.
    const send: typeof vault.send = (key, inputs) => {
      const call = vault.calls.length;
      setImmediate(() => order.push(`call ${call} written`));
      return vault.send(key, inputs);
    };
    const batcher = new SignBatcher(options(), send, (_key, size) => observed.push(size));
    let callsWhileQueueing = -1;
    const results = await batchOf(batcher, 63, (i) => {
      if (i === 40) callsWhileQueueing = vault.calls.length;
      if (i === 31 || i === 32) order.push(`item ${i}`);
      return batcher.sign(lane(), `i${i}`);
    });
    assert.equal(callsWhileQueueing, 1, 'the first piece left as soon as it was queued, while the rest were encoded');
    assert.deepEqual(order, ['item 31', 'call 0 written', 'item 32'], 'the rest are encoded after the first piece is written');
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [32, 31]);
    // The second answer first: each caller still gets its own item.
    await vault.calls[1]!.ok();
    await vault.calls[0]!.ok();
    assert.deepEqual(await Promise.all(results), Array.from({ length: 63 }, (_, i) => `vault:v1:sig(i${i})`));
    assert.equal(batcher.inFlight('k'), 0);
    // Items the claims policy refused never reach the batcher: what arrived leaves, in one call if that is all.
    const fewer = await batchOf(batcher, 64, (i) => (i < 20 ? batcher.sign(lane(), `f${i}`) : undefined));
    assert.deepEqual(vault.calls.slice(2).map((c) => c.inputs.length), [20]);
    await vault.calls[2]!.ok();
    assert.equal((await Promise.all(fewer)).length, 20);
  });

  test('signs of other callers that join the lane while a spread batch waits for its piece\'s write leave the usual way, within max_batch_size', async () => {
    const vault = fakeVault();
    const others: Array<Promise<string>> = [];
    const arrive: Array<() => void> = [];
    const send: typeof vault.send = (key, inputs) => {
      // In the turn the first piece's write takes, before the batch's next items: 300 signs from other callers.
      if (vault.calls.length === 0) setImmediate(() => arrive.shift()?.());
      return vault.send(key, inputs);
    };
    const batcher = new SignBatcher(options(), send);
    arrive.push(() => { for (let n = 0; n < 300; n++) others.push(batcher.sign(lane(), `o${n}`)); });
    const results = await batchOf(batcher, 64, (i) => batcher.sign(lane(), `i${i}`));
    assert.equal(others.length, 300, 'the other signs arrived between the pieces');
    const own = vault.calls.filter((c) => c.inputs.some((input) => input.startsWith('i'))).map((c) => c.inputs);
    assert.deepEqual(own, [
      Array.from({ length: 32 }, (_, i) => `i${i}`),
      Array.from({ length: 32 }, (_, i) => `i${i + 32}`),
    ], 'each piece carries the batch\'s own items only');
    for (let n = 0; n < vault.calls.length; n++) await vault.calls[n]!.ok();
    assert.deepEqual(await Promise.all(results), Array.from({ length: 64 }, (_, i) => `vault:v1:sig(i${i})`));
    assert.deepEqual(await Promise.all(others), Array.from({ length: 300 }, (_, n) => `vault:v1:sig(o${n})`));
    const sizes = vault.calls.map((c) => c.inputs.length);
    assert.ok(sizes.every((size) => size <= DEFAULT_BATCHER.maxBatchSize), `no call above max_batch_size: ${sizes.join(', ')}`);
  });

  test('max_in_flight holds for a spread batch\'s last piece when other callers\' calls filled the lane meanwhile', async () => {
    const vault = fakeVault();
    const arrive: Array<() => void> = [];
    const send: typeof vault.send = (key, inputs) => {
      if (vault.calls.length === 0) setImmediate(() => arrive.shift()?.());
      return vault.send(key, inputs);
    };
    const batcher = new SignBatcher(options({ maxInFlight: 2 }), send);
    const others: Array<Promise<string>> = [];
    arrive.push(() => { for (let n = 0; n < 64; n++) others.push(batcher.sign(lane(), `o${n}`)); });
    const results = await batchOf(batcher, 64, (i) => batcher.sign(lane(), `i${i}`));
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [32, 64], 'the first piece, then the others\' full batch');
    assert.equal(batcher.inFlight('k'), 2, 'the last piece waits: max_in_flight 2');
    await vault.calls[0]!.ok();
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [32, 64, 32], 'then leaves the usual way');
    for (let n = 1; n < vault.calls.length; n++) await vault.calls[n]!.ok();
    assert.equal((await Promise.all(results)).length, 64);
    assert.equal((await Promise.all(others)).length, 64);
  });

  test('a caller batch that finds a call out, or more than one batch, or too little work leaves whole', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options(), vault.send);
    fire(batcher.sign(lane(), 'first'));
    const behind = await batchOf(batcher, 40, (i) => batcher.sign(lane(), `b${i}`));
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [1], 'behind a call out, the batch gathers as before');
    await vault.calls[0]!.ok();
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [1, 40], 'then leaves whole');
    await vault.calls[1]!.ok();
    await Promise.all(behind);
    // 10 ES256 items are about 0.5 ms of Vault work: not worth a second call.
    const small = await batchOf(batcher, 10, (i) => batcher.sign(lane(), `s${i}`));
    assert.deepEqual(vault.calls.slice(2).map((c) => c.inputs.length), [10]);
    await vault.calls[2]!.ok();
    await Promise.all(small);
    // Two full batches at once: full batches, as under load.
    const two = await batchOf(batcher, 128, (i) => batcher.sign(lane(), `t${i}`));
    assert.deepEqual(vault.calls.slice(3).map((c) => c.inputs.length), [64, 64]);
    for (let n = 3; n < vault.calls.length; n++) await vault.calls[n]!.ok();
    assert.equal((await Promise.all(two)).length, 128);
  });

  test('RSA-2048: a lone batch of 16 (24 ms of Vault work) leaves as two calls of 8; one sign stays one call', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options(), vault.send);
    const results = await batchOf(batcher, 16, (i) => batcher.sign(lane('rsa-2048'), `r${i}`));
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [8, 8]);
    await Promise.all(vault.calls.map((c) => c.ok()));
    assert.equal((await Promise.all(results)).length, 16);
    const one = await batchOf(batcher, 1, () => batcher.sign(lane('rsa-2048'), 'alone'));
    assert.deepEqual(vault.calls.slice(2).map((c) => c.inputs.length), [1]);
    await vault.calls[2]!.ok();
    await Promise.all(one);
  });
});

/**
 * A Vault with `cores` cores that takes 15 ms per call plus 0.4 ms per item, each call on one core: with one core the
 * pieces of a spread batch wait for each other, with two they are signed side by side.
 */
function timedVault(cores: number) {
  const calls: number[] = [];
  let busy = 0;
  const waiting: Array<() => void> = [];
  const send = async (_lane: LaneKey, inputs: string[]): Promise<ItemResult[]> => {
    calls.push(inputs.length);
    if (busy >= cores) await new Promise<void>((r) => waiting.push(r));
    busy++;
    await new Promise((r) => setTimeout(r, 15 + 0.4 * inputs.length));
    busy--;
    waiting.shift()?.();
    return inputs.map((input) => ({ signature: `vault:v1:sig(${input})` }));
  };
  return { calls, send };
}

describe('SignBatcher: spreading a lone batch only where it is faster', () => {
  async function loneBatches(cores: number, count: number): Promise<number[]> {
    const vault = timedVault(cores);
    const batcher = new SignBatcher(options(), vault.send);
    const callsPerBatch: number[] = [];
    for (let n = 0; n < count; n++) {
      const before = vault.calls.length;
      await Promise.all(await batchOf(batcher, 64, (i) => batcher.sign(lane(), `b${n}-${i}`)));
      callsPerBatch.push(vault.calls.length - before);
    }
    return callsPerBatch;
  }

  test('a Vault with one core: after two tries each way (the first not counted), lone batches leave whole (spread again only to re-check)', async () => {
    const calls = await loneBatches(1, 24);
    assert.deepEqual(calls.slice(0, 4), [2, 1, 2, 1], 'spread, whole, spread, whole');
    assert.deepEqual(calls.slice(4), calls.slice(4).map((_, i) => ((i + 5) % 16 === 0 ? 2 : 1)), `whole from then on: ${calls.join(' ')}`);
  });

  test('a Vault with two cores: lone batches are spread', async () => {
    const calls = await loneBatches(2, 24);
    assert.deepEqual(calls.slice(0, 4), [2, 1, 2, 1]);
    assert.deepEqual(calls.slice(4), calls.slice(4).map((_, i) => ((i + 5) % 16 === 0 ? 1 : 2)), `spread from then on: ${calls.join(' ')}`);
  });
});

describe('SignBatcher: full batches waiting', () => {
  test('a call that ends frees its slot and sends the next batch before its own waiters settle', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ maxInFlight: 1 }), vault.send);
    const first = await batchOf(batcher, 64, (i) => batcher.sign(lane(), `a${i}`));
    const second = await batchOf(batcher, 64, (i) => batcher.sign(lane(), `b${i}`));
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [64], 'one call at a time (max_in_flight 1: not spread either)');
    let callsWhenSettled = 0;
    void first[0]!.then(() => { callsWhenSettled = vault.calls.length; });
    await vault.calls[0]!.ok();
    await Promise.all(first);
    // Settling a batch's waiters builds its tokens and answers (milliseconds at 64): Vault must not idle meanwhile.
    assert.equal(callsWhenSettled, 2, 'the next batch had left when the first answer reached its callers');
    await vault.calls[1]!.ok();
    assert.equal((await Promise.all(second)).length, 64);
  });

  test('full batches leave at once up to the adaptive limit (2 at first), which grows while Vault answers at its pace', async () => {
    const vault = fakeVault();
    // max_batch_size 64: a backlog is not merged into larger calls (tested below), so each call is one full batch.
    const batcher = new SignBatcher(options({ maxBatchSize: 64 }), vault.send);
    const results = await batchOf(batcher, 64 * 8, (i) => batcher.sign(lane(), `i${i}`));
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [64, 64], 'two full batches before Vault\'s pace is known');
    // The first answer sets the baseline; a round trip at the baseline means Vault has room: one more call.
    await vault.calls[0]!.ok();
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [64, 64, 64, 64]);
    assert.equal(batcher.inFlight('k'), 3);
    for (let n = 1; n < vault.calls.length; n++) await vault.calls[n]!.ok();
    assert.equal((await Promise.all(results)).length, 64 * 8);
    assert.ok(vault.calls.every((c) => c.inputs.length === 64), 'every call a full batch');
  });

  test('min_in_flight raises the adaptive limit\'s floor: six full batches leave before Vault\'s pace is known, RSA-4096 four', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ minInFlight: 6, maxBatchSize: 64 }), vault.send);
    assert.equal(batcher.callLimit('k'), 6);
    const results = await batchOf(batcher, 64 * 8, (i) => batcher.sign(lane(), `i${i}`));
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [64, 64, 64, 64, 64, 64]);
    for (let n = 0; n < vault.calls.length; n++) await vault.calls[n]!.ok();
    assert.equal((await Promise.all(results)).length, 64 * 8);
    assert.ok(batcher.callLimit('k') >= 6, 'never below the floor');

    const costly = fakeVault();
    const rsa = new SignBatcher(options({ minInFlight: 4 }), costly.send);
    const signed = await batchOf(rsa, 20, (i) => rsa.sign(lane('rsa-4096'), `r${i}`));
    assert.deepEqual(costly.calls.map((c) => c.inputs.length), [2, 2, 2, 2], 'a costly alg keeps the floor an operator set');
    for (let n = 0; n < costly.calls.length; n++) await costly.calls[n]!.ok();
    assert.equal(rsa.callLimit('k'), 4);
    assert.equal((await Promise.all(signed)).length, 20);
  });

  test('a backlog deeper than one round of full batches leaves in fewer, larger calls (up to max_batch_size); one round\'s worth as full batches', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options(), vault.send);
    // One round: the limit's two calls take it as full batches, in parallel.
    const round = await batchOf(batcher, 128, (i) => batcher.sign(lane(), `r${i}`));
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [64, 64]);
    for (const call of [...vault.calls]) await call.ok();
    assert.deepEqual(await Promise.all(round), Array.from({ length: 128 }, (_, i) => `vault:v1:sig(r${i})`));

    // Sixteen callers' batches at once: what would wait for later rounds is merged into the calls that may leave.
    const merged = fakeVault();
    const deep = new SignBatcher(options(), merged.send);
    const results: Array<Array<Promise<string>>> = [];
    for (let c = 0; c < 16; c++) results.push(await batchOf(deep, 64, (i) => deep.sign(lane(), `c${c}.${i}`)));
    // The first caller found the lane idle (a lone batch, spread over two calls); the rest queued behind those.
    assert.deepEqual(merged.calls.map((c) => c.inputs.length), [32, 32]);
    await merged.calls[0]!.ok();
    assert.deepEqual(merged.calls.map((c) => c.inputs.length), [32, 32, 256], 'a free call takes a share of the backlog, up to max_batch_size');
    for (let n = 1; n < merged.calls.length; n++) await merged.calls[n]!.ok();
    const sizes = merged.calls.slice(2).map((c) => c.inputs.length);
    assert.equal(sizes.reduce((a, b) => a + b), 15 * 64);
    assert.ok(sizes.every((n) => n > 64 && n <= 256), `every call merged, none above max_batch_size: ${sizes.join(', ')}`);
    // Every caller gets its own items' signatures, in order, whatever call carried them.
    for (const [c, batch] of results.entries()) {
      assert.deepEqual(await Promise.all(batch), Array.from({ length: 64 }, (_, i) => `vault:v1:sig(c${c}.${i})`));
    }
  });

  test('max_in_flight is a hard ceiling, whatever Vault\'s pace', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options({ maxInFlight: 2 }), vault.send);
    const results = await batchOf(batcher, 64 * 6, (i) => batcher.sign(lane(), `i${i}`));
    let most = 0;
    for (let n = 0; n < vault.calls.length; n++) {
      most = Math.max(most, batcher.inFlight('k'));
      await vault.calls[n]!.ok();
    }
    assert.equal(most, 2);
    assert.equal((await Promise.all(results)).length, 64 * 6);
  });

  test('a partial batch waits while a partial call is out; a full one does not', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options(), vault.send);
    fire(batcher.sign(lane(), 'first'));
    const few = Array.from({ length: 10 }, (_, i) => batcher.sign(lane(), `p${i}`));
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [1], 'ten waiting: not a full batch, they gather');
    const many = await batchOf(batcher, 54, (i) => batcher.sign(lane(), `f${i}`));
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [1, 64], 'the queue reached a full batch: it left at once');
    await vault.calls[0]!.ok();
    await vault.calls[1]!.ok();
    assert.equal((await Promise.all([...few, ...many])).length, 64);
  });

  test('RSA-4096 (2 items per batch, Vault-bound): full batches leave two at a time, however fast Vault answers', async () => {
    const vault = fakeVault();
    const rsa = new SignBatcher(options(), vault.send);
    const results = await batchOf(rsa, 20, (i) => rsa.sign(lane('rsa-4096'), `r${i}`));
    assert.deepEqual(vault.calls.map((c) => c.inputs.length), [2, 2]);
    let most = 0;
    for (let n = 0; n < vault.calls.length; n++) {
      most = Math.max(most, rsa.inFlight('k'));
      await vault.calls[n]!.ok();
    }
    assert.equal(most, 2, 'the limit does not grow for a costly alg');
    assert.equal(rsa.callLimit('k'), 2);
    assert.ok(vault.calls.every((c) => c.inputs.length <= 2), 'within the call cap');
    assert.deepEqual(vault.calls.slice(-2).map((c) => c.inputs.length), [1, 1], 'the last two, each a full batch of its own, leave side by side');
    assert.equal((await Promise.all(results)).length, 20);
  });

  // A batch is full once it carries the Vault work of a full batch of cheap signs (64 x 0.05 ms), not only at 64
  // items: signs that gather behind the one partial call leave beside it when they are worth a core of their own.
  const fullByWork: Array<[string, number]> = [
    ['ed25519', 64],
    ['ecdsa-p384', 11], // ceil(3.2 / 0.3)
    ['rsa-2048', 3], // ceil(3.2 / 1.5)
    ['rsa-3072', 1],
  ];
  for (const [keyType, full] of fullByWork) {
    test(`${keyType}: signs waiting behind a partial call leave beside it once ${full} of them carry a full batch's Vault work`, async () => {
      const vault = fakeVault();
      const batcher = new SignBatcher(options(), vault.send);
      const first = batcher.sign(lane(keyType), 'first');
      assert.equal(vault.calls.length, 1);
      const waiting = Array.from({ length: full - 1 }, (_, i) => batcher.sign(lane(keyType), `w${i}`));
      assert.equal(vault.calls.length, 1, `${full - 1} waiting: less than a full batch's work, they gather`);
      waiting.push(batcher.sign(lane(keyType), 'last'));
      assert.equal(vault.calls.length, 2, 'a full batch leaves at once, while the first call is out');
      assert.equal(vault.calls[1]!.inputs.length, full);
      await vault.calls[1]!.ok();
      await vault.calls[0]!.ok();
      assert.equal((await Promise.all([first, ...waiting])).length, full + 1);
    });
  }

  test('RSA-2048, 16 clients signing one token each: their signs keep two calls at Vault, not one', async () => {
    const vault = fakeVault();
    const batcher = new SignBatcher(options(), vault.send);
    const results: Array<Promise<string>> = [];
    for (let i = 0; i < 16; i++) results.push(batcher.sign(lane('rsa-2048'), `r${i}`));
    assert.equal(batcher.inFlight('k'), 2, 'a partial call and a full one: two of Vault\'s cores sign');
    // Each answer lets the next full batch leave, so Vault never falls back to one call while signs wait.
    for (let n = 0; n < vault.calls.length; n++) {
      if (batcher.queued('k') > 0) assert.ok(batcher.inFlight('k') >= 2, `${batcher.queued('k')} waiting behind ${batcher.inFlight('k')} call`);
      await vault.calls[n]!.ok();
    }
    assert.equal((await Promise.all(results)).length, 16);
  });
});
