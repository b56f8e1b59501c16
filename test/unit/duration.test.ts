import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatDuration, parseDuration } from '../../src/duration.ts';

describe('parseDuration', () => {
  const accepted: Array<[unknown, number]> = [
    ['90s', 90],
    ['15m', 900],
    ['1h', 3600],
    ['7d', 604800],
    ['1h30m', 5400],
    ['1d2h3m4s', 86400 + 7200 + 180 + 4],
    ['0s', 0],
    ['0', 0],
    ['300', 300],
    [' 15m ', 900],
    ['\t60\n', 60],
    [0, 0],
    [300, 300],
    [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
    ['90m', 5400],
    ['30s1m', 90],
  ];
  for (const [input, seconds] of accepted) {
    test(`${JSON.stringify(input)} is ${seconds} seconds`, () => {
      assert.equal(parseDuration(input), seconds);
    });
  }

  const refused: unknown[] = [
    '', ' ',
    '1.5h', '-5s', '-5', '15 m', '15M', '1H', '1w', '1y', 'ms', '10ms', 'h', '1h 30m', '1h30', 'PT1H', '1e3',
    '0x10', '+5', '15m!', 'abc',
    -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER + 1,
    null, undefined, true, {}, [], ['15m'],
    '99999999999999999999', '99999999999999999999d', `${Number.MAX_SAFE_INTEGER}d`,
  ];
  for (const input of refused) {
    test(`${typeof input === 'number' ? String(input) : JSON.stringify(input) ?? String(input)} is not a duration`, () => {
      assert.equal(parseDuration(input), undefined);
    });
  }

  test('whole numbers stay whole seconds, never rounded into a different value', () => {
    assert.equal(parseDuration('59'), 59);
    assert.equal(parseDuration(59.9), undefined);
  });
});

describe('formatDuration', () => {
  const cases: Array<[number, string]> = [
    [0, '0s'],
    [1, '1s'],
    [59, '59s'],
    [60, '1m'],
    [90, '1m30s'],
    [3600, '1h'],
    [5400, '1h30m'],
    [86400, '1d'],
    [604800, '7d'],
    [90061, '1d1h1m1s'],
    [86401, '1d1s'],
  ];
  for (const [seconds, text] of cases) {
    test(`${seconds} seconds is "${text}"`, () => {
      assert.equal(formatDuration(seconds), text);
    });
  }

  test('fractional seconds are rounded to whole seconds', () => {
    assert.equal(formatDuration(59.6), '1m');
    assert.equal(formatDuration(90.4), '1m30s');
  });

  test('a value that rounds to zero still prints "0s", never an empty string', () => {
    assert.equal(formatDuration(0.4), '0s');
  });

  test('every formatted duration parses back to the same number of seconds', () => {
    for (const seconds of [0, 1, 59, 60, 61, 3599, 3600, 3661, 86399, 86400, 90061, 31536000, 1234567]) {
      assert.equal(parseDuration(formatDuration(seconds)), seconds, `round trip of ${seconds}`);
    }
  });
});
