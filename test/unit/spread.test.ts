// SpreadChoice (src/signer/spread.ts): whether a lone caller batch is spread over several Vault calls.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EXPLORE_EVERY, SpreadChoice } from '../../src/signer/spread.ts';

test('first one lone batch spread and one whole, then the way that was faster per item', () => {
  const choice = new SpreadChoice();
  assert.equal(choice.next(), true, 'nothing known: try spreading');
  choice.record(true, 0.2);
  assert.equal(choice.next(), false, 'spread known, whole not: try whole');
  choice.record(false, 0.1);
  assert.equal(choice.next(), false, 'whole was faster');
});

test(`every ${EXPLORE_EVERY}th decision goes the other way, so a change in Vault is noticed`, () => {
  const choice = new SpreadChoice();
  choice.next();
  choice.record(true, 0.05);
  choice.next();
  choice.record(false, 0.1);
  const decisions = Array.from({ length: 3 * EXPLORE_EVERY }, () => choice.next());
  const whole = decisions.flatMap((spread, i) => (spread ? [] : [i]));
  assert.equal(whole.length, 3, 'spread is faster: whole only on the exploring turns');
  assert.ok(whole.every((i, k) => k === 0 || i - whole[k - 1]! === EXPLORE_EVERY), `evenly spaced: ${whole.join(', ')}`);
});

test('the moving averages follow Vault, with a margin: lone batches go whole once whole ones are clearly faster', () => {
  const choice = new SpreadChoice();
  choice.next();
  choice.record(true, 0.05);
  choice.next();
  choice.record(false, 0.1);
  assert.equal(choice.next(), true);
  // Spread batches slow down to about whole's pace: within the margin, the way in use stays.
  for (let i = 0; i < 40; i++) choice.record(true, 0.105);
  assert.equal(choice.next(), true, 'not clearly slower: no switch on noise');
  // Vault lost cores: spread batches now take twice as long per item as whole ones.
  for (let i = 0; i < 40; i++) choice.record(true, 0.2);
  assert.equal(choice.next(), false);
});
