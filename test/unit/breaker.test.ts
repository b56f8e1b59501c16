import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CircuitBreaker } from '../../src/vault/breaker.ts';

const options = { failureThreshold: 3, cooldownMs: 500, maxCooldownMs: 2000 };

test('closed: calls go; it opens after the threshold of consecutive failures, not before', () => {
  const states: string[] = [];
  const breaker = new CircuitBreaker(options, (s) => states.push(s));
  breaker.failure(0);
  breaker.failure(1);
  assert.equal(breaker.allow(2), true);
  breaker.success();
  breaker.failure(3);
  breaker.failure(4);
  assert.equal(breaker.state, 'closed', 'a success resets the count');
  breaker.failure(5);
  assert.equal(breaker.state, 'open');
  assert.deepEqual(states, ['open']);
});

test('open: calls fail fast until the cooldown, then one probe at a time (half-open)', () => {
  const breaker = new CircuitBreaker(options);
  for (let i = 0; i < 3; i++) breaker.failure(1000);
  assert.equal(breaker.allow(1499), false);
  assert.equal(breaker.retryAfterMs(1200), 300);
  assert.equal(breaker.allow(1500), true, 'the probe');
  assert.equal(breaker.state, 'half-open');
  assert.equal(breaker.allow(1501), false, 'only one probe out');
  breaker.success();
  assert.equal(breaker.state, 'closed');
  assert.equal(breaker.allow(1502), true);
});

test('a failed probe opens again with a doubled cooldown, capped', () => {
  const breaker = new CircuitBreaker(options);
  for (let i = 0; i < 3; i++) breaker.failure(0);
  let now = 0;
  const cooldowns: number[] = [];
  for (let round = 0; round < 4; round++) {
    const wait = breaker.retryAfterMs(now);
    cooldowns.push(wait);
    now += wait;
    assert.equal(breaker.allow(now), true);
    breaker.failure(now);
  }
  assert.deepEqual(cooldowns, [500, 1000, 2000, 2000]);
  now += 2000;
  assert.equal(breaker.allow(now), true);
  breaker.success();
  for (let i = 0; i < 3; i++) breaker.failure(now);
  assert.equal(breaker.retryAfterMs(now), 500, 'a success resets the cooldown');
});
