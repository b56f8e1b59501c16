import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ClaimPolicyError, InvalidRequestError } from '../../src/errors.ts';
import {
  DEFAULT_CLAIM_LIMITS, REGISTERED_BY_SIGNET, issueClaims, validateClaims,
  type ClaimsPolicy, type SignetClaim,
} from '../../src/jwt/claims.ts';

const NOW = 1_700_000_000;

function policy(overrides: Partial<ClaimsPolicy> = {}): ClaimsPolicy {
  return {
    issuer: 'https://signet.example',
    defaultTtl: 300,
    maxTtl: 3600,
    callerMaySet: new Set<SignetClaim>(),
    limits: DEFAULT_CLAIM_LIMITS,
    ...overrides,
  };
}

let jtiCounter = 0;
const newJti = (): string => `jti-${++jtiCounter}`;

function issue(claims: Record<string, unknown>, p: ClaimsPolicy = policy(), ttl?: number) {
  return issueClaims(ttl === undefined ? { claims } : { claims, ttl }, p, NOW, newJti);
}

/** Asserts that `fn` throws `type` with a message matching every pattern. */
function refuses(fn: () => unknown, type: typeof ClaimPolicyError | typeof InvalidRequestError, ...patterns: RegExp[]): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  });
}

describe('issueClaims: what Signet sets', () => {
  test('sets iss, iat, nbf, exp (now + default_ttl) and a fresh jti', () => {
    const { claims, exp } = issue({ sub: 'alice' });
    assert.equal(claims.iss, 'https://signet.example');
    assert.equal(claims.iat, NOW);
    assert.equal(claims.nbf, NOW);
    assert.equal(claims.exp, NOW + 300);
    assert.equal(exp, NOW + 300);
    assert.equal(typeof claims.jti, 'string');
    assert.equal(claims.sub, 'alice');
  });

  test('jti comes from the generator, a new one for every token', () => {
    const first = issue({}).claims.jti;
    const second = issue({}).claims.jti;
    assert.notEqual(first, second);
    assert.equal(issueClaims({ claims: {} }, policy(), NOW, () => 'fixed').claims.jti, 'fixed');
  });

  test("the caller's other claims pass through unchanged", () => {
    const input = { sub: 'bob', scope: 'read write', roles: ['a', 'b'], org: { id: 7, name: 'x' }, flag: false, none: null };
    const { claims } = issue(structuredClone(input));
    for (const [name, value] of Object.entries(input)) assert.deepEqual(claims[name], value, name);
  });

  test('the caller input is not mutated', () => {
    const input = { sub: 'c' };
    issue(input);
    assert.deepEqual(input, { sub: 'c' });
  });

  test('a requested ttl sets exp', () => {
    assert.equal(issue({}, policy(), 60).exp, NOW + 60);
    assert.equal(issue({}, policy(), 3600).exp, NOW + 3600);
  });

  test('a ttl beyond max_ttl is capped at max_ttl', () => {
    const { claims, exp } = issue({}, policy(), 3601);
    assert.equal(exp, NOW + 3600);
    assert.equal(claims.exp, NOW + 3600);
    assert.equal(issue({}, policy(), 10 * 365 * 86400).exp, NOW + 3600);
  });

  test('a default_ttl larger than max_ttl is capped too', () => {
    assert.equal(issue({}, policy({ defaultTtl: 7200, maxTtl: 600 })).exp, NOW + 600);
  });

  test('ttl 0 or negative is refused', () => {
    refuses(() => issue({}, policy(), 0), InvalidRequestError, /ttl/);
    refuses(() => issue({}, policy(), -5), InvalidRequestError, /ttl/);
  });
});

describe('issueClaims: reserved claims', () => {
  const samples: Record<SignetClaim, unknown> = { iss: 'https://evil.example', iat: NOW, nbf: NOW, exp: NOW + 60, jti: 'mine' };

  for (const name of REGISTERED_BY_SIGNET) {
    test(`${name} is refused (403) unless caller_claims allows it, and the refusal names ${name}`, () => {
      refuses(() => issue({ [name]: samples[name] }), ClaimPolicyError, new RegExp(`\\bclaim ${name}\\b`), /caller_claims/);
    });

    test(`${name} is accepted and kept when caller_claims lists it`, () => {
      const { claims } = issue({ [name]: samples[name] }, policy({ callerMaySet: new Set([name]) }));
      assert.equal(claims[name], samples[name]);
    });

    test(`allowing another claim does not allow ${name}`, () => {
      const others = REGISTERED_BY_SIGNET.filter((c) => c !== name);
      refuses(() => issue({ [name]: samples[name] }, policy({ callerMaySet: new Set(others) })), ClaimPolicyError, new RegExp(`claim ${name}`));
    });
  }

  test('the refusal never echoes the claim value', () => {
    assert.throws(() => issue({ iss: 'secret-issuer-value' }), (error: Error) => !error.message.includes('secret-issuer-value'));
  });

  test('a caller-set exp later than now + max_ttl is refused, naming exp and max_ttl', () => {
    const p = policy({ callerMaySet: new Set<SignetClaim>(['exp']) });
    refuses(() => issue({ exp: NOW + 3601 }, p), ClaimPolicyError, /claim exp/, /max_ttl/);
    assert.equal(issue({ exp: NOW + 3600 }, p).exp, NOW + 3600, 'exactly now + max_ttl is allowed');
  });

  test('a caller-set exp wins over the ttl', () => {
    const p = policy({ callerMaySet: new Set<SignetClaim>(['exp']) });
    assert.equal(issue({ exp: NOW + 100 }, p, 3000).exp, NOW + 100);
  });

  test('exp must be after nbf', () => {
    const p = policy({ callerMaySet: new Set<SignetClaim>(['exp', 'nbf']) });
    refuses(() => issue({ exp: NOW }, p), ClaimPolicyError, /claim exp/, /nbf/);
    refuses(() => issue({ exp: NOW - 10 }, p), ClaimPolicyError, /claim exp/);
    refuses(() => issue({ nbf: NOW + 500 }, p, 300), ClaimPolicyError, /claim exp/);
    assert.equal(issue({ nbf: NOW + 100 }, p, 300).claims.nbf, NOW + 100);
  });

  for (const name of ['iat', 'nbf', 'exp'] as const) {
    test(`a caller-set ${name} must be a NumericDate`, () => {
      const p = policy({ callerMaySet: new Set<SignetClaim>([name]) });
      for (const bad of ['1700000000', 1.5, -1, null, true, Number.MAX_SAFE_INTEGER + 2]) {
        refuses(() => issue({ [name]: bad }, p), InvalidRequestError, new RegExp(`claim ${name}`), /NumericDate/);
      }
    });
  }

  for (const name of ['iss', 'jti'] as const) {
    test(`a caller-set ${name} must be a non-empty string`, () => {
      const p = policy({ callerMaySet: new Set<SignetClaim>([name]) });
      for (const bad of ['', 5, null, ['x']]) refuses(() => issue({ [name]: bad }, p), InvalidRequestError, new RegExp(`claim ${name}`));
    });
  }

  test('sub, when present, must be a string', () => {
    for (const bad of [5, null, { id: 1 }, ['a']]) refuses(() => issue({ sub: bad }), InvalidRequestError, /claim sub/);
  });
});

describe('issueClaims: aud', () => {
  test('without an allow-list any non-empty string or array of strings is accepted', () => {
    assert.equal(issue({ aud: 'anything' }).claims.aud, 'anything');
    assert.deepEqual(issue({ aud: ['a', 'b'] }).claims.aud, ['a', 'b']);
  });

  test('malformed aud is refused (400) naming aud', () => {
    for (const bad of ['', [], [''], ['a', 5], 5, null, { a: 1 }]) refuses(() => issue({ aud: bad }), InvalidRequestError, /claim aud/);
  });

  const allow = policy({ audiences: ['api', 'billing'] });

  test('every value must be in the allow-list', () => {
    assert.equal(issue({ aud: 'api' }, allow).claims.aud, 'api');
    assert.deepEqual(issue({ aud: ['api', 'billing'] }, allow).claims.aud, ['api', 'billing']);
  });

  test('a value outside the allow-list is refused (403), naming aud and the allow-list, not the value', () => {
    for (const bad of ['other', ['api', 'other'], ['other'], 'API', 'api ']) {
      assert.throws(() => issue({ aud: bad }, allow), (error: unknown) => {
        assert.ok(error instanceof ClaimPolicyError);
        assert.match(error.message, /claim aud/);
        assert.match(error.message, /audiences/);
        assert.ok(!error.message.includes('other'));
        return true;
      });
    }
  });

  test('a token without aud is allowed even with an allow-list', () => {
    assert.equal(issue({ sub: 'x' }, allow).claims.aud, undefined);
  });
});

describe('issueClaims: limits', () => {
  const limits = { maxClaims: 4, maxDepth: 3, maxStringLength: 10 };
  const p = policy({ limits });

  test('top-level claim count: at the limit is fine, one more is refused', () => {
    assert.doesNotThrow(() => issue({ a: 1, b: 2, c: 3, d: 4 }, p));
    refuses(() => issue({ a: 1, b: 2, c: 3, d: 4, e: 5 }, p), InvalidRequestError, /claims/, /\b4\b/);
  });

  test('the default limit is 64 top-level claims', () => {
    const claims = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`c${i}`, i]));
    assert.doesNotThrow(() => issue(claims));
    refuses(() => issue({ ...claims, extra: 1 }), InvalidRequestError, /64/);
  });

  test('string length: at the limit is fine, one more is refused, naming the claim path', () => {
    assert.doesNotThrow(() => issue({ s: 'x'.repeat(10) }, p));
    refuses(() => issue({ s: 'x'.repeat(11) }, p), InvalidRequestError, /claim s\b/, /10 characters/);
    refuses(() => issue({ o: { inner: 'x'.repeat(11) } }, p), InvalidRequestError, /claim o\.inner/);
    refuses(() => issue({ l: ['ok', 'x'.repeat(11)] }, p), InvalidRequestError, /claim l\[1\]/);
  });

  test('nesting depth: maxDepth levels of JSON (the payload object included) pass, one more is refused', () => {
    // maxDepth 3: payload { a: { b: {} } } has three levels of objects.
    assert.doesNotThrow(() => issue({ a: { b: { leaf: 'v' } } }, p));
    assert.doesNotThrow(() => issue({ a: [[1, 2]] }, p));
    refuses(() => issue({ a: { b: { c: {} } } }, p), InvalidRequestError, /claim a\.b\.c/, /nesting/, /\b3\b/);
    refuses(() => issue({ a: [[[1]]] }, p), InvalidRequestError, /claim a\[0\]\[0\]/, /nesting/);
  });

  test('the default depth limit refuses deeply nested claims', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 50; i++) deep = { d: deep };
    refuses(() => issue({ deep }), InvalidRequestError, /nesting/);
  });

  test('non-finite numbers and non-JSON values are refused', () => {
    refuses(() => issue({ n: Number.POSITIVE_INFINITY }), InvalidRequestError, /claim n\b/, /finite/);
    refuses(() => issue({ n: { x: Number.NaN } }), InvalidRequestError, /claim n\.x/);
    refuses(() => issue({ f: () => 1 }), InvalidRequestError, /claim f\b/);
    refuses(() => issue({ b: 10n }), InvalidRequestError, /claim b\b/);
  });
});

describe('validateClaims', () => {
  const base = { iss: 'https://signet.example', aud: 'api', iat: NOW - 10, nbf: NOW - 10, exp: NOW + 100 };
  const opts = { now: NOW, clockSkew: 0 };

  test('a fresh token passes', () => {
    assert.deepEqual(validateClaims(base, { ...opts, issuer: base.iss, audience: 'api' }), []);
  });

  test('exp is required and must be a number', () => {
    for (const exp of [undefined, '1700000100', null, Number.NaN]) {
      const errors = validateClaims({ ...base, exp }, opts);
      assert.equal(errors.length, 1);
      assert.match(errors[0]!, /claim exp/);
    }
  });

  test('exp: valid strictly before exp, expired at exp (no skew)', () => {
    assert.deepEqual(validateClaims({ exp: NOW + 1 }, opts), []);
    assert.match(validateClaims({ exp: NOW }, opts).join(), /claim exp: .*expired/);
    assert.match(validateClaims({ exp: NOW - 1 }, opts).join(), /expired/);
  });

  test('exp: clock skew extends validity by exactly clock_skew seconds', () => {
    const skew = { now: NOW, clockSkew: 60 };
    assert.deepEqual(validateClaims({ exp: NOW - 59 }, skew), []);
    assert.match(validateClaims({ exp: NOW - 60 }, skew).join(), /expired/);
  });

  test('nbf: not valid before nbf − clock_skew, valid from then on', () => {
    assert.deepEqual(validateClaims({ exp: NOW + 100, nbf: NOW }, opts), []);
    assert.match(validateClaims({ exp: NOW + 100, nbf: NOW + 1 }, opts).join(), /claim nbf: .*not valid yet/);
    const skew = { now: NOW, clockSkew: 60 };
    assert.deepEqual(validateClaims({ exp: NOW + 100, nbf: NOW + 60 }, skew), []);
    assert.match(validateClaims({ exp: NOW + 100, nbf: NOW + 61 }, skew).join(), /claim nbf/);
    assert.match(validateClaims({ exp: NOW + 100, nbf: 'soon' }, opts).join(), /claim nbf: not a number/);
  });

  test('iat: refused when issued in the future beyond the skew', () => {
    assert.deepEqual(validateClaims({ exp: NOW + 100, iat: NOW }, opts), []);
    assert.match(validateClaims({ exp: NOW + 100, iat: NOW + 1 }, opts).join(), /claim iat/);
    const skew = { now: NOW, clockSkew: 30 };
    assert.deepEqual(validateClaims({ exp: NOW + 100, iat: NOW + 30 }, skew), []);
    assert.match(validateClaims({ exp: NOW + 100, iat: NOW + 31 }, skew).join(), /claim iat: issued in the future/);
    assert.match(validateClaims({ exp: NOW + 100, iat: '0' }, opts).join(), /claim iat: not a number/);
  });

  test('iss must equal the expected issuer when one is given', () => {
    assert.deepEqual(validateClaims(base, { ...opts, issuer: 'https://signet.example' }), []);
    assert.match(validateClaims(base, { ...opts, issuer: 'https://other.example' }).join(), /claim iss/);
    assert.match(validateClaims({ exp: NOW + 1 }, { ...opts, issuer: 'https://signet.example' }).join(), /claim iss/);
    assert.deepEqual(validateClaims({ ...base, iss: 'anything' }, opts), [], 'no issuer expected, none checked');
  });

  test('aud: a string must equal, an array must include, the expected audience', () => {
    assert.deepEqual(validateClaims({ exp: NOW + 1, aud: 'api' }, { ...opts, audience: 'api' }), []);
    assert.deepEqual(validateClaims({ exp: NOW + 1, aud: ['x', 'api'] }, { ...opts, audience: 'api' }), []);
    assert.match(validateClaims({ exp: NOW + 1, aud: 'apix' }, { ...opts, audience: 'api' }).join(), /claim aud/);
    assert.match(validateClaims({ exp: NOW + 1, aud: ['x', 'y'] }, { ...opts, audience: 'api' }).join(), /claim aud/);
    assert.match(validateClaims({ exp: NOW + 1 }, { ...opts, audience: 'api' }).join(), /claim aud/);
    assert.match(validateClaims({ exp: NOW + 1, aud: [] }, { ...opts, audience: 'api' }).join(), /claim aud/);
  });

  test('every failure is reported, not only the first', () => {
    const errors = validateClaims(
      { exp: NOW - 100, nbf: NOW + 100, iat: NOW + 100, iss: 'x', aud: 'y' },
      { now: NOW, clockSkew: 0, issuer: 'z', audience: 'w' },
    );
    assert.equal(errors.length, 5);
    for (const claim of ['exp', 'nbf', 'iat', 'iss', 'aud']) assert.ok(errors.some((e) => e.startsWith(`claim ${claim}`)), claim);
  });

  test('a token issued by issueClaims validates at issue time and expires at its exp', () => {
    const { claims, exp } = issue({ aud: 'api' }, policy({ audiences: ['api'] }), 120);
    const check = { clockSkew: 0, issuer: 'https://signet.example', audience: 'api' };
    assert.deepEqual(validateClaims(claims, { ...check, now: NOW }), []);
    assert.deepEqual(validateClaims(claims, { ...check, now: exp - 1 }), []);
    assert.match(validateClaims(claims, { ...check, now: exp }).join(), /expired/);
  });
});

describe('subject and audience patterns (keys[].subject_pattern, keys[].audience_pattern)', () => {
  const now = 1_800_000_000;
  const base = {
    issuer: 'https://i', defaultTtl: 300, maxTtl: 3600, callerMaySet: new Set<never>(), limits: DEFAULT_CLAIM_LIMITS,
    subjectPattern: /^(?:user-[0-9]+)$/u, audiencePattern: /^(?:api(-[a-z]+)?)$/u,
  };
  test('a matching sub and aud pass', () => {
    const { claims } = issueClaims({ claims: { sub: 'user-42', aud: ['api', 'api-eu'] } }, base, now, () => 'j');
    assert.equal(claims.sub, 'user-42');
  });
  test('sub is required when a subject_pattern is set', () => {
    assert.throws(() => issueClaims({ claims: {} }, base, now, () => 'j'), { status: 403, message: 'claim sub: required by this key (keys[].subject_pattern)' });
  });
  test('a sub that matches only in part is refused, without echoing it', () => {
    assert.throws(() => issueClaims({ claims: { sub: 'user-42; admin' } }, base, now, () => 'j'),
      (e: Error) => e.message === "claim sub: does not match this key's subject_pattern (keys[].subject_pattern)" && !e.message.includes('admin'));
  });
  test('every aud value must match the audience_pattern', () => {
    assert.throws(() => issueClaims({ claims: { sub: 'user-1', aud: ['api', 'billing'] } }, base, now, () => 'j'),
      { status: 403, message: "claim aud: a value does not match this key's audience_pattern (keys[].audience_pattern)" });
  });
});
