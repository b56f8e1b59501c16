import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InFlightLimit } from '../../src/signer/in-flight.ts';

const options = { ceiling: 16, floor: 2, baselineWindowMs: 10_000 };

/** Reports `count` round trips of `ms` each, one after another (each sent after the previous answer). */
function rounds(limit: InFlightLimit, count: number, ms: number, start = 0): number {
  let now = start;
  for (let i = 0; i < count; i++) {
    const sent = now + 1;
    now = sent + ms;
    limit.observe(sent, ms, now);
  }
  return now;
}

test('starts at its floor and grows by one per round trip while Vault answers at its baseline pace', () => {
  const limit = new InFlightLimit(options);
  assert.equal(limit.value, 2);
  limit.observe(0, 10, 10);
  assert.equal(limit.value, 3, 'the first answer is the baseline: Vault had room');
  limit.observe(5, 11, 16);
  assert.equal(limit.value, 3, 'a call sent before the last change says nothing about the new limit');
  limit.observe(12, 12, 24);
  assert.equal(limit.value, 4);
  assert.equal(limit.baselineMs, 10);
});

test('shrinks by one per round trip once round trips pass twice the baseline (calls queue inside Vault), down to its floor', () => {
  const limit = new InFlightLimit(options);
  const now = rounds(limit, 6, 10);
  assert.equal(limit.value, 8);
  rounds(limit, 1, 25, now);
  assert.equal(limit.value, 8, 'one slow answer is smoothed: (10 + 25) / 2 is under twice the baseline');
  rounds(limit, 3, 25, now + 30);
  assert.equal(limit.value, 5, 'smoothed 21, 23, 24 ms: three rounds past twice the baseline');
  rounds(limit, 20, 40, now + 200);
  assert.equal(limit.value, 2, 'never below the floor: one call would leave Vault idle during each round trip');
});

test('between 1.5x and 2x the baseline the limit holds', () => {
  const limit = new InFlightLimit(options);
  limit.observe(0, 10, 10);
  const now = rounds(limit, 3, 18, 10); // smoothed 14 (grows once), 16, 17
  const before = limit.value;
  rounds(limit, 5, 18, now);
  assert.equal(limit.value, before);
});

test('never above the ceiling; floor and ceiling of 1 mean one call', () => {
  const limit = new InFlightLimit({ ...options, ceiling: 4 });
  rounds(limit, 20, 5);
  assert.equal(limit.value, 4);
  assert.equal(new InFlightLimit({ ...options, ceiling: 1 }).value, 1, 'the floor is capped by the ceiling');
});

test('the baseline forgets a fast period after two windows: a Vault that got slower for good is the new normal', () => {
  const limit = new InFlightLimit({ ...options, baselineWindowMs: 1000 });
  limit.observe(0, 5, 5);
  assert.equal(limit.baselineMs, 5);
  limit.observe(1100, 20, 1120);
  assert.equal(limit.baselineMs, 5, 'the previous window still counts');
  limit.observe(2200, 20, 2220);
  assert.equal(limit.baselineMs, 20, 'two windows later only the recent pace counts');
});
