import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { backoffMs } from '../../src/vault/auth.ts';

const LOW = (): number => 0;
const HIGH = (): number => 0.999999;
const MID = (): number => 0.5;

describe('backoffMs', () => {
  test('the first retry waits between half and all of the base delay', () => {
    assert.equal(backoffMs(0, 500, 30_000, LOW), 250);
    assert.equal(backoffMs(0, 500, 30_000, HIGH), 500);
    assert.equal(backoffMs(0, 500, 30_000, MID), 375);
  });

  test('the ceiling doubles with every attempt', () => {
    const ceilings = [0, 1, 2, 3, 4, 5].map((attempt) => backoffMs(attempt, 500, 1_000_000, HIGH));
    assert.deepEqual(ceilings, [500, 1000, 2000, 4000, 8000, 16000]);
  });

  test('it is capped: no wait ever exceeds capMs, however many attempts', () => {
    for (const attempt of [6, 7, 10, 20, 21, 100, 10_000]) {
      assert.equal(backoffMs(attempt, 500, 30_000, HIGH), 30_000, `attempt ${attempt}`);
      assert.equal(backoffMs(attempt, 500, 30_000, LOW), 15_000, `attempt ${attempt}`);
    }
  });

  test('a huge attempt count never overflows into Infinity or NaN', () => {
    for (const attempt of [1e6, Number.MAX_SAFE_INTEGER]) {
      const delay = backoffMs(attempt, 500, Number.MAX_SAFE_INTEGER, HIGH);
      assert.ok(Number.isFinite(delay) && delay > 0, String(delay));
    }
  });

  test('the defaults: base 500 ms, cap 30 s', () => {
    assert.equal(backoffMs(0, undefined, undefined, HIGH), 500);
    assert.equal(backoffMs(50, undefined, undefined, HIGH), 30_000);
  });

  test('the jitter stays in [ceiling/2, ceiling] and uses the injected random source', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 40 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (attempt, r) => {
        const ceiling = Math.min(30_000, 500 * 2 ** Math.min(attempt, 20));
        const delay = backoffMs(attempt, 500, 30_000, () => r);
        assert.ok(Number.isInteger(delay));
        assert.ok(delay >= Math.floor(ceiling / 2) && delay <= ceiling, `${delay} for attempt ${attempt}`);
      },
    ));
  });

  test('different random draws spread the retries (no thundering herd)', () => {
    const delays = new Set([0, 0.2, 0.4, 0.6, 0.8].map((r) => backoffMs(3, 500, 30_000, () => r)));
    assert.equal(delays.size, 5);
  });

  test('more attempts never wait less, for the same random draw', () => {
    for (const r of [0, 0.3, 0.99]) {
      let previous = 0;
      for (let attempt = 0; attempt < 30; attempt++) {
        const delay = backoffMs(attempt, 500, 30_000, () => r);
        assert.ok(delay >= previous);
        previous = delay;
      }
    }
  });
});
