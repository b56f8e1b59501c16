// The signer's retry after Vault refuses a key version (an operator raised min_encryption_version): the second
// attempt signs with the new version within what is left of the caller's sign_timeout, not a fresh one. Driven
// through a real SignBatcher whose Vault the test plays: the first attempt is refused after a while, the second
// never answered.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildConfig } from '../../src/config.ts';
import { SignetError, VaultUnavailableError } from '../../src/errors.ts';
import { algSpec } from '../../src/jwt/algorithms.ts';
import type { Keyring, KeyView } from '../../src/keys/keyring.ts';
import { DEFAULT_BATCHER, SignBatcher, type LaneKey } from '../../src/signer/batcher.ts';
import { Signer } from '../../src/signer/signer.ts';
import type { ItemResult } from '../../src/vault/transit.ts';

const SIGN_TIMEOUT_MS = 1500;
/** A loaded CI fires timers late; before the fix the sign failed at the first answer + SIGN_TIMEOUT_MS (2 s). */
const LATE_MARGIN_MS = 350;

function setup(firstAnswerMs: number) {
  const config = buildConfig({ keys: [{ name: 'app', issuer: 'https://issuer.test' }] }, { VAULT_TOKEN: 't' });
  let version = 1;
  const keyring = {
    view: (): KeyView => ({ name: 'app', alg: 'ES256', type: 'ecdsa-p256', spec: algSpec('ES256'), signing: { kid: `app-v${version}`, version } }) as unknown as KeyView,
  } as unknown as Keyring;
  const calls: number[] = [];
  const send = async (lane: LaneKey, inputs: string[]): Promise<ItemResult[]> => {
    calls.push(lane.version);
    if (lane.version === 2) return await new Promise<ItemResult[]>(() => {});
    await sleep(firstAnswerMs);
    return inputs.map(() => ({ error: 'requested version for signing is less than the minimum encryption key version' }));
  };
  const batcher = new SignBatcher({ ...DEFAULT_BATCHER, maxWaitMs: SIGN_TIMEOUT_MS }, send);
  const signer = new Signer(config.keys, keyring, batcher, async () => { version = 2; });
  return { signer, calls };
}

describe('Signer: the min_encryption_version retry keeps the caller\'s deadline', () => {
  test('one token: refused after 500 ms, signed again with the new version, answered 503 at sign_timeout from the start', async () => {
    const { signer, calls } = setup(500);
    const started = performance.now();
    await assert.rejects(signer.sign('app', { claims: {} }), VaultUnavailableError);
    const took = performance.now() - started;
    assert.deepEqual(calls, [1, 2], 'tried again with the new version');
    assert.ok(took >= SIGN_TIMEOUT_MS - 5 && took <= SIGN_TIMEOUT_MS + LATE_MARGIN_MS, `answered after ${Math.round(took)} ms`);
  });

  test('a batch: the same, for every item', async () => {
    const { signer, calls } = setup(500);
    const started = performance.now();
    const results = await signer.signBatch('app', Array.from({ length: 3 }, () => ({ claims: {} })));
    const took = performance.now() - started;
    assert.deepEqual(calls, [1, 2]);
    assert.ok(results.every((r) => r instanceof SignetError && r.status === 503), 'every item a 503');
    assert.ok(took >= SIGN_TIMEOUT_MS - 5 && took <= SIGN_TIMEOUT_MS + LATE_MARGIN_MS, `answered after ${Math.round(took)} ms`);
  });

  test('refused after 1,200 ms: what is left (300 ms) cannot cover a Vault call (1.2 s lately), so the retry is refused at once', async () => {
    const { signer, calls } = setup(1200);
    const started = performance.now();
    await assert.rejects(signer.sign('app', { claims: {} }), (error: unknown) => error instanceof VaultUnavailableError && /could not be answered within sign_timeout/.test(error.message));
    const took = performance.now() - started;
    assert.deepEqual(calls, [1], 'no second Vault call');
    assert.ok(took < SIGN_TIMEOUT_MS, `answered after ${Math.round(took)} ms, before the deadline`);
  });
});

// A caller's batch settles through one callback and one count (Signer.signBatch): items refused as they are handed
// to the batcher (synchronously, inside the loop that hands them over), items refused by the claims policy, and
// items Vault signs later must each be answered once, in order, and the batch must neither hang nor answer early.
describe('Signer.signBatch: every item answered once, whichever way it ends', () => {
  function batchSetup(batcherOptions: Partial<typeof DEFAULT_BATCHER>, answerAtOnce = false) {
    const config = buildConfig({ keys: [{ name: 'app', issuer: 'https://issuer.test' }] }, { VAULT_TOKEN: 't' });
    const keyring = {
      view: (): KeyView => ({ name: 'app', alg: 'EdDSA', type: 'ed25519', spec: algSpec('EdDSA'), signing: { kid: 'app-v1', version: 1 } }) as unknown as KeyView,
    } as unknown as Keyring;
    const calls: number[] = [];
    const send = async (_lane: LaneKey, inputs: string[]): Promise<ItemResult[]> => {
      calls.push(inputs.length);
      if (answerAtOnce === false) await sleep(5);
      return inputs.map(() => ({ signature: 'vault:v1:c2lnbmF0dXJl' }));
    };
    const batcher = new SignBatcher({ ...DEFAULT_BATCHER, ...batcherOptions }, send);
    return { signer: new Signer(config.keys, keyring, batcher, async () => {}), batcher, calls };
  }

  test('a queue that fills mid-batch: the first items signed, the rest refused (503) at once, a policy refusal its own 403', async () => {
    const { signer, batcher, calls } = batchSetup({ maxQueue: 3 });
    const requests = Array.from({ length: 8 }, (_, i) => ({ claims: i === 1 ? { iss: 'https://elsewhere' } : { sub: `user-${i}` } }));
    const results = await signer.signBatch('app', requests);
    assert.equal(results.length, 8);
    assert.deepEqual(results.map((r) => (r instanceof SignetError ? r.status : 200)), [200, 403, 200, 200, 503, 503, 503, 503]);
    assert.match((results[4] as SignetError).message, /sign queue of key "app" is full/);
    for (const i of [0, 2, 3]) {
      const { token, kid, expires_at: exp } = results[i] as { token: string; kid: string; expires_at: number };
      assert.equal(kid, 'app-v1');
      assert.equal(token.split('.')[2], 'c2lnbmF0dXJl');
      assert.equal(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sub, `user-${i}`);
      assert.ok(exp > Date.now() / 1000);
    }
    assert.equal(calls.reduce((a, b) => a + b, 0), 3, 'only the queued items reached Vault');
    assert.equal(batcher.pendingBytes(), 0, 'every held byte released');
  });

  test('every item refused before it queues (max_pending_bytes): the batch answers at once, nothing sent', async () => {
    const { signer, batcher, calls } = batchSetup({ maxPendingBytes: 10 });
    const results = await signer.signBatch('app', Array.from({ length: 5 }, (_, i) => ({ claims: { sub: `user-${i}` } })));
    assert.deepEqual(results.map((r) => (r instanceof SignetError ? r.status : 200)), [503, 503, 503, 503, 503]);
    assert.deepEqual(calls, []);
    assert.equal(batcher.pendingBytes(), 0);
  });

  // A lone batch of 64 EdDSA items is spread over two calls, the items after the first piece encoded a turn later.
  test('a spread batch whose first piece is answered before the rest are encoded (the lane idle again meanwhile): every item once', async () => {
    const { signer, batcher, calls } = batchSetup({}, true);
    const requests = Array.from({ length: 64 }, (_, i) => ({ claims: i % 20 === 19 ? { iss: 'https://elsewhere' } : { sub: `user-${i}` } }));
    for (let round = 0; round < 3; round++) {
      const results = await signer.signBatch('app', requests);
      assert.deepEqual(results.map((r) => (r instanceof SignetError ? r.status : 200)), requests.map((_, i) => (i % 20 === 19 ? 403 : 200)));
      for (const [i, r] of results.entries()) {
        if (!(r instanceof SignetError)) assert.equal(JSON.parse(Buffer.from(r.token.split('.')[1]!, 'base64url').toString()).sub, `user-${i}`);
      }
      assert.equal(batcher.pendingBytes(), 0);
      assert.equal(batcher.inFlight('app'), 0);
    }
    assert.ok(calls.length > 3, `spread into pieces: ${calls.join(', ')}`);
    assert.equal(calls.reduce((a, b) => a + b, 0), 3 * 61, 'only the items the policy allowed reached Vault');
  });

  test('a bug in an item after the first piece fails the request; the piece already sent settles without answering twice', async () => {
    const { signer, batcher, calls } = batchSetup({});
    const requests: Array<{ claims: Record<string, unknown> }> = Array.from({ length: 64 }, (_, i) => ({ claims: { sub: `user-${i}` } }));
    requests[40] = { claims: { get sub(): string { throw new TypeError('a claims getter that throws'); } } };
    await assert.rejects(signer.signBatch('app', requests), TypeError);
    assert.deepEqual(calls, [32, 8], 'the first piece had left; the items queued before the bug leave as usual');
    await sleep(20);
    assert.equal(batcher.pendingBytes(), 0, 'its held bytes released when Vault answered');
  });

  test('every item refused by the claims policy: answered at once, nothing sent', async () => {
    const { signer, calls } = batchSetup({});
    const results = await signer.signBatch('app', [{ claims: { iat: 1 } }, { claims: { jti: 'x' } }]);
    assert.deepEqual(results.map((r) => (r as SignetError).status), [403, 403]);
    assert.deepEqual(calls, []);
  });
});
