import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  computeSchedule, isPublished, type KeySchedule, type ScheduleConfig, type VaultKeyTimeline, type VersionState,
} from '../../src/keys/schedule.ts';

const CONFIG: ScheduleConfig = { publishDelay: 600, maxTtl: 3600, clockSkew: 60, refreshInterval: 30 };
/** How long a superseded version stays verifiable: max_ttl + clock_skew + refresh_interval. */
const GRACE = CONFIG.maxTtl + CONFIG.clockSkew + CONFIG.refreshInterval;
const T = 1_700_000_000;

function key(versions: Array<[number, number]>, extra: Partial<VaultKeyTimeline> = {}): VaultKeyTimeline {
  const list = versions.map(([version, createdAt]) => ({ version, createdAt }));
  return {
    versions: list,
    latestVersion: Math.max(...versions.map(([v]) => v)),
    minEncryptionVersion: 0,
    minDecryptionVersion: Math.min(...versions.map(([v]) => v)),
    autoRotatePeriod: 0,
    ...extra,
  };
}

function states(schedule: KeySchedule): Record<number, VersionState> {
  return Object.fromEntries(schedule.versions.map((v) => [v.version, v.state]));
}

function version(schedule: KeySchedule, n: number) {
  const found = schedule.versions.find((v) => v.version === n);
  assert.ok(found, `version ${n} in the schedule`);
  return found;
}

describe('computeSchedule: first version', () => {
  test('version 1 is active at once, at its creation time, with nothing scheduled', () => {
    const s = computeSchedule(key([[1, T]]), CONFIG, T);
    assert.equal(s.signingVersion, 1);
    assert.deepEqual(states(s), { 1: 'active' });
    assert.equal(s.nextChangeAt, undefined);
    assert.equal(s.nextRotationAt, undefined);
    assert.equal(version(s, 1).supersededAt, undefined);
  });

  test('version 1 is active even if Vault’s clock is ahead of ours', () => {
    assert.equal(computeSchedule(key([[1, T + 30]]), CONFIG, T).signingVersion, 1);
  });

  test('a key with no versions is an error, never a schedule with nothing to sign', () => {
    assert.throws(() => computeSchedule({ ...key([[1, T]]), versions: [] }, CONFIG, T));
  });
});

describe('computeSchedule: one rotation, at every boundary', () => {
  const created = T;
  const k = key([[1, T - 100_000], [2, created]]);
  const activeAt = created + CONFIG.publishDelay;
  const retireAt = activeAt + GRACE;

  const rows: Array<{ at: number; what: string; signing: number; v1: VersionState; v2: VersionState; next: number | undefined }> = [
    { at: created, what: 'at creation', signing: 1, v1: 'active', v2: 'pending', next: activeAt },
    { at: activeAt - 1, what: 'one second before created + publish_delay', signing: 1, v1: 'active', v2: 'pending', next: activeAt },
    { at: activeAt, what: 'exactly at created + publish_delay (inclusive)', signing: 2, v1: 'verify-only', v2: 'active', next: retireAt },
    { at: activeAt + 1, what: 'one second later', signing: 2, v1: 'verify-only', v2: 'active', next: retireAt },
    { at: retireAt - 1, what: 'one second before superseded + max_ttl + skew + refresh', signing: 2, v1: 'verify-only', v2: 'active', next: retireAt },
    { at: retireAt, what: 'exactly at superseded + max_ttl + skew + refresh (inclusive)', signing: 2, v1: 'retired', v2: 'active', next: undefined },
    { at: retireAt + 86_400, what: 'a day later', signing: 2, v1: 'retired', v2: 'active', next: undefined },
  ];
  for (const row of rows) {
    test(`${row.what}: v${row.signing} signs, v1 ${row.v1}, v2 ${row.v2}`, () => {
      const s = computeSchedule(k, CONFIG, row.at);
      assert.equal(s.signingVersion, row.signing);
      assert.deepEqual(states(s), { 1: row.v1, 2: row.v2 });
      assert.equal(s.nextChangeAt, row.next);
    });
  }

  test('supersededAt of v1 is when v2 starts signing, known in advance', () => {
    for (const at of [created, activeAt, retireAt]) assert.equal(version(computeSchedule(k, CONFIG, at), 1).supersededAt, activeAt);
    assert.equal(version(computeSchedule(k, CONFIG, created), 2).supersededAt, undefined);
  });

  test('each version reports when its own state changes next', () => {
    const before = computeSchedule(k, CONFIG, created);
    assert.equal(version(before, 2).nextChangeAt, activeAt);
    assert.equal(version(before, 1).nextChangeAt, undefined, 'the active version changes only when v2 starts');
    const after = computeSchedule(k, CONFIG, activeAt);
    assert.equal(version(after, 1).nextChangeAt, retireAt);
    assert.equal(version(after, 2).nextChangeAt, undefined);
  });

  test('the grace period grows with max_ttl, clock_skew and refresh_interval', () => {
    const longer = { ...CONFIG, maxTtl: CONFIG.maxTtl + 1000, clockSkew: CONFIG.clockSkew + 10, refreshInterval: CONFIG.refreshInterval + 1 };
    assert.equal(states(computeSchedule(k, longer, retireAt))[1], 'verify-only');
    assert.equal(states(computeSchedule(k, longer, retireAt + 1011))[1], 'retired');
    assert.equal(states(computeSchedule(k, longer, retireAt + 1010))[1], 'verify-only');
  });

  test('publish_delay is the configured one', () => {
    const short = { ...CONFIG, publishDelay: 10 };
    assert.equal(computeSchedule(k, short, created + 9).signingVersion, 1);
    assert.equal(computeSchedule(k, short, created + 10).signingVersion, 2);
  });

  test('only retired versions leave the published set', () => {
    assert.equal(isPublished('pending'), true);
    assert.equal(isPublished('active'), true);
    assert.equal(isPublished('verify-only'), true);
    assert.equal(isPublished('retired'), false);
  });
});

describe('computeSchedule: two rotations inside one publish delay', () => {
  const k = key([[1, T - 100_000], [2, T], [3, T + 100]]);
  const v2At = T + CONFIG.publishDelay;
  const v3At = T + 100 + CONFIG.publishDelay;

  const rows: Array<{ at: number; signing: number; expect: Record<number, VersionState>; next: number | undefined }> = [
    { at: T + 100, signing: 1, expect: { 1: 'active', 2: 'pending', 3: 'pending' }, next: v2At },
    { at: v2At - 1, signing: 1, expect: { 1: 'active', 2: 'pending', 3: 'pending' }, next: v2At },
    { at: v2At, signing: 2, expect: { 1: 'verify-only', 2: 'active', 3: 'pending' }, next: v3At },
    { at: v3At - 1, signing: 2, expect: { 1: 'verify-only', 2: 'active', 3: 'pending' }, next: v3At },
    { at: v3At, signing: 3, expect: { 1: 'verify-only', 2: 'verify-only', 3: 'active' }, next: v2At + GRACE },
    { at: v2At + GRACE, signing: 3, expect: { 1: 'retired', 2: 'verify-only', 3: 'active' }, next: v3At + GRACE },
    { at: v3At + GRACE, signing: 3, expect: { 1: 'retired', 2: 'retired', 3: 'active' }, next: undefined },
  ];
  for (const row of rows) {
    test(`at T+${row.at - T}: v${row.signing} signs`, () => {
      const s = computeSchedule(k, CONFIG, row.at);
      assert.equal(s.signingVersion, row.signing);
      assert.deepEqual(states(s), row.expect);
      assert.equal(s.nextChangeAt, row.next);
    });
  }

  test('v1 is superseded when v2 starts, v2 when v3 starts', () => {
    const s = computeSchedule(k, CONFIG, T + 100);
    assert.equal(version(s, 1).supersededAt, v2At);
    assert.equal(version(s, 2).supersededAt, v3At);
    assert.equal(version(s, 3).supersededAt, undefined);
  });

  test('two versions created in the same second: the newer one signs once their delay has passed', () => {
    const same = key([[1, T - 100_000], [2, T], [3, T]]);
    assert.deepEqual(states(computeSchedule(same, CONFIG, T + CONFIG.publishDelay)), { 1: 'verify-only', 2: 'verify-only', 3: 'active' });
  });
});

describe('computeSchedule: min_encryption_version forces the signing version', () => {
  const k = key([[1, T - 100_000], [2, T]]);

  test('raised above the scheduled version, it signs at once', () => {
    const s = computeSchedule({ ...k, minEncryptionVersion: 2 }, CONFIG, T + 1);
    assert.equal(s.signingVersion, 2);
    assert.deepEqual(states(s), { 1: 'verify-only', 2: 'active' });
    // v1 stays verifiable for the full grace after the latest moment it could have signed.
    assert.equal(version(s, 1).nextChangeAt, T + CONFIG.publishDelay + GRACE);
  });

  test('below or at the scheduled version, it changes nothing', () => {
    for (const min of [0, 1]) {
      assert.equal(computeSchedule({ ...k, minEncryptionVersion: min }, CONFIG, T + 1).signingVersion, 1);
      assert.equal(computeSchedule({ ...k, minEncryptionVersion: min }, CONFIG, T + CONFIG.publishDelay).signingVersion, 2);
    }
  });

  test('forcing a middle version leaves newer versions pending', () => {
    const three = key([[1, T - 100_000], [2, T], [3, T + 10]]);
    const s = computeSchedule({ ...three, minEncryptionVersion: 2 }, CONFIG, T + 20);
    assert.deepEqual(states(s), { 1: 'verify-only', 2: 'active', 3: 'pending' });
    assert.equal(s.nextChangeAt, T + 10 + CONFIG.publishDelay);
  });

  test('never beyond the newest listed version', () => {
    assert.equal(computeSchedule({ ...k, minEncryptionVersion: 9 }, CONFIG, T + 1).signingVersion, 2);
  });
});

describe('computeSchedule: min_decryption_version raised', () => {
  test('older versions are simply not listed, and the oldest listed signs when nothing newer is due', () => {
    // Vault lists only versions >= min_decryption_version (here 3); v4 is still in its publish delay.
    const k = key([[3, T], [4, T + 100]], { latestVersion: 4, minDecryptionVersion: 3 });
    const s = computeSchedule(k, CONFIG, T + 200);
    assert.equal(s.signingVersion, 3);
    assert.deepEqual(states(s), { 3: 'active', 4: 'pending' });
    assert.deepEqual(s.versions.map((v) => v.version), [3, 4], 'no version below min_decryption_version appears');
  });

  test('signing never falls below the oldest listed version, even if its delay has not passed', () => {
    const k = key([[5, T]], { latestVersion: 5, minDecryptionVersion: 5 });
    assert.equal(computeSchedule(k, CONFIG, T).signingVersion, 5);
    assert.deepEqual(states(computeSchedule(k, CONFIG, T)), { 5: 'active' });
  });

  test('with versions due, the newest due one signs and the rest of the listed ones stay verify-only', () => {
    const k = key([[2, T - 2_000], [3, T - 1_000], [4, T]], { latestVersion: 4, minDecryptionVersion: 2 });
    assert.deepEqual(states(computeSchedule(k, CONFIG, T + 1)), { 2: 'verify-only', 3: 'active', 4: 'pending' });
  });
});

describe('computeSchedule: auto-rotation', () => {
  test('nextRotationAt is the newest version’s creation + auto_rotate_period', () => {
    const k = key([[1, T - 5000], [2, T]], { autoRotatePeriod: 86_400 });
    assert.equal(computeSchedule(k, CONFIG, T + 1).nextRotationAt, T + 86_400);
  });

  test('no auto_rotate_period, no nextRotationAt', () => {
    assert.equal(computeSchedule(key([[1, T]]), CONFIG, T).nextRotationAt, undefined);
  });

  test('the rotation time does not enter nextChangeAt (a rotation is a Vault event, read on refresh)', () => {
    const s = computeSchedule(key([[1, T]], { autoRotatePeriod: 60 }), CONFIG, T);
    assert.equal(s.nextRotationAt, T + 60);
    assert.equal(s.nextChangeAt, undefined);
  });
});

describe('computeSchedule: symmetric (HMAC) keys', () => {
  test('the newest version signs at once; older ones are verify-only', () => {
    // Transit gives no creation times for hmac keys: parseTransitKey reports 0.
    const k = key([[1, 0], [2, 0], [3, 0]], { symmetric: true });
    const s = computeSchedule(k, CONFIG, T);
    assert.equal(s.signingVersion, 3);
    assert.deepEqual(states(s), { 1: 'verify-only', 2: 'verify-only', 3: 'active' });
    assert.equal(s.nextChangeAt, undefined);
  });

  test('no publish delay: a version created this second signs this second', () => {
    const k = key([[1, T - 1000], [2, T]], { symmetric: true });
    assert.equal(computeSchedule(k, CONFIG, T).signingVersion, 2);
  });

  test('older versions never retire by time (only min_decryption_version removes them)', () => {
    const k = key([[1, T - 1000], [2, T]], { symmetric: true });
    assert.equal(states(computeSchedule(k, CONFIG, T + 10 * 365 * 86_400))[1], 'verify-only');
  });

  test('nextRotationAt only when creation times are known', () => {
    assert.equal(computeSchedule(key([[1, 0]], { symmetric: true, autoRotatePeriod: 3600 }), CONFIG, T).nextRotationAt, undefined);
    assert.equal(computeSchedule(key([[1, T]], { symmetric: true, autoRotatePeriod: 3600 }), CONFIG, T).nextRotationAt, T + 3600);
  });
});

describe('computeSchedule: determinism', () => {
  const k = key([[1, T - 100_000], [2, T], [3, T + 100]], { autoRotatePeriod: 3600 });

  test('the same inputs give the same outputs, on every instance', () => {
    for (const at of [T, T + 650, T + 700, T + 5000]) {
      assert.deepEqual(computeSchedule(k, CONFIG, at), computeSchedule(structuredClone(k), { ...CONFIG }, at));
    }
  });

  test('the order Vault lists versions in does not matter, and the input is not mutated', () => {
    const shuffled = { ...k, versions: [k.versions[2]!, k.versions[0]!, k.versions[1]!] };
    const copy = structuredClone(shuffled);
    assert.deepEqual(computeSchedule(shuffled, CONFIG, T + 650), computeSchedule(k, CONFIG, T + 650));
    assert.deepEqual(shuffled, copy);
  });
});

describe('computeSchedule: invariants over random key histories', () => {
  const history = fc.record({
    count: fc.integer({ min: 1, max: 6 }),
    gaps: fc.array(fc.integer({ min: 0, max: 8000 }), { minLength: 6, maxLength: 6 }),
    dropOldest: fc.integer({ min: 0, max: 5 }),
    minEnc: fc.integer({ min: 0, max: 7 }),
    symmetric: fc.boolean(),
    offset: fc.integer({ min: -100, max: 60_000 }),
  }).map(({ count, gaps, dropOldest, minEnc, symmetric, offset }) => {
    let at = T;
    const all: Array<[number, number]> = [];
    for (let v = 1; v <= count; v++) {
      at += gaps[v - 1]!;
      all.push([v, at]);
    }
    const listed = all.slice(Math.min(dropOldest, count - 1));
    return { k: key(listed, { latestVersion: count, minEncryptionVersion: minEnc, symmetric }), now: T + offset };
  });

  test('exactly one active version, which is the signing version; newer ones pending, older ones verify-only or retired', () => {
    fc.assert(fc.property(history, ({ k, now }) => {
      const s = computeSchedule(k, CONFIG, now);
      const listed = k.versions.map((v) => v.version);
      assert.ok(listed.includes(s.signingVersion));
      assert.deepEqual(s.versions.filter((v) => v.state === 'active').map((v) => v.version), [s.signingVersion]);
      for (const v of s.versions) {
        if (v.version > s.signingVersion) assert.equal(v.state, 'pending');
        if (v.version < s.signingVersion) assert.ok(v.state === 'verify-only' || v.state === 'retired');
      }
      if (!k.symmetric) assert.ok(s.signingVersion >= Math.min(k.minEncryptionVersion, Math.max(...listed)));
      if (s.nextChangeAt !== undefined) assert.ok(s.nextChangeAt > now);
    }));
  });

  test('nothing changes before nextChangeAt, and something changes at it', () => {
    fc.assert(fc.property(history, ({ k, now }) => {
      const s = computeSchedule(k, CONFIG, now);
      if (s.nextChangeAt === undefined) {
        assert.deepEqual(states(computeSchedule(k, CONFIG, now + 10 * 365 * 86_400)), states(s));
        return;
      }
      assert.deepEqual(states(computeSchedule(k, CONFIG, s.nextChangeAt - 1)), states(s));
      assert.notDeepEqual(states(computeSchedule(k, CONFIG, s.nextChangeAt)), states(s));
    }));
  });

  test('with the Vault state fixed, time only moves versions forward (pending → active → verify-only → retired)', () => {
    const rank: Record<VersionState, number> = { pending: 0, active: 1, 'verify-only': 2, retired: 3 };
    fc.assert(fc.property(history, fc.integer({ min: 0, max: 20_000 }), ({ k, now }, step) => {
      const a = computeSchedule(k, CONFIG, now);
      const b = computeSchedule(k, CONFIG, now + step);
      assert.ok(b.signingVersion >= a.signingVersion);
      for (const v of a.versions) assert.ok(rank[states(b)[v.version]!] >= rank[v.state], `v${v.version}`);
    }));
  });

  test('a superseded asymmetric version stays published for the whole grace after it stopped signing', () => {
    fc.assert(fc.property(history, ({ k, now }) => {
      if (k.symmetric) return;
      const s = computeSchedule(k, CONFIG, now);
      for (const v of s.versions) {
        if (v.state !== 'verify-only' && v.state !== 'retired') continue;
        assert.ok(v.supersededAt !== undefined);
        assert.equal(v.state === 'retired', now >= v.supersededAt + GRACE, `v${v.version}`);
      }
    }));
  });
});
