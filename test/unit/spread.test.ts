// SpreadChoice (src/signer/spread.ts): whether a lone caller batch is spread over several Vault calls.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EXPLORE_EVERY, SpreadChoice } from '../../src/signer/spread.ts';

/** A choice that has seen `spread` and `whole` ms per item (after the first batch of each way, which is not counted). */
function known(spread: number, whole: number): SpreadChoice {
  const choice = new SpreadChoice();
  for (const [way, ms] of [[true, 9], [false, 9], [true, spread], [false, whole]] as const) {
    assert.equal(choice.next(), way);
    choice.record(way, ms);
  }
  return choice;
}

test('each way in turn until both are known, the first batch of each not counted; then the way that was faster per item', () => {
  const choice = new SpreadChoice();
  assert.equal(choice.next(), true, 'nothing known: try spreading');
  // A process's first batches are slow (a new connection, code V8 has not optimised yet): not held against spreading.
  choice.record(true, 0.5);
  assert.equal(choice.next(), false, 'then whole');
  choice.record(false, 0.1);
  assert.equal(choice.next(), true, 'neither counted yet: spread again');
  choice.record(true, 0.05);
  assert.equal(choice.next(), false);
  choice.record(false, 0.1);
  assert.equal(choice.next(), true, 'spread was faster, its slow first batch not counted');
  assert.equal(known(0.2, 0.1).next(), false, 'whole was faster');
});

test(`every ${EXPLORE_EVERY}th decision goes the other way, so a change in Vault is noticed`, () => {
  const choice = known(0.05, 0.1);
  const decisions = Array.from({ length: 3 * EXPLORE_EVERY }, () => choice.next());
  const whole = decisions.flatMap((spread, i) => (spread ? [] : [i]));
  assert.equal(whole.length, 3, 'spread is faster: whole only on the exploring turns');
  assert.ok(whole.every((i, k) => k === 0 || i - whole[k - 1]! === EXPLORE_EVERY), `evenly spaced: ${whole.join(', ')}`);
});

test('the moving averages follow Vault, with a margin: lone batches go whole once whole ones are clearly faster', () => {
  const choice = known(0.05, 0.1);
  assert.equal(choice.next(), true);
  // Spread batches slow down to about whole's pace: within the margin, the way in use stays.
  for (let i = 0; i < 40; i++) choice.record(true, 0.105);
  assert.equal(choice.next(), true, 'not clearly slower: no switch on noise');
  // Vault lost cores: spread batches now take twice as long per item as whole ones.
  for (let i = 0; i < 40; i++) choice.record(true, 0.2);
  assert.equal(choice.next(), false);
});

test('the way not in use is corrected within a few of its turns: a stale estimate does not hold for hundreds of batches', () => {
  // Whole is in use; spread's estimate is stale (taken while Vault was busy), and spread is now twice as fast.
  const choice = known(0.3, 0.1);
  assert.equal(choice.next(), false);
  let turns = 0;
  while (turns < 10) {
    // The way in use keeps its pace; one exploring turn of spread per EXPLORE_EVERY batches.
    for (let i = 0; i < EXPLORE_EVERY - 1; i++) choice.record(false, 0.1);
    choice.record(true, 0.05);
    turns++;
    if (choice.next()) break;
  }
  assert.ok(turns <= 5, `spread taken again after ${turns} exploring turns`);
});
