// The sign retry policy (src/signer/retry.ts) and the Vault health loop (src/vault/health-monitor.ts), each on its
// own: the decisions they make from what Vault answered. Their behaviour against real Vault servers (leader
// elections, outages, replaced tokens) is in test/integration/outage.test.ts, ha.test.ts and auth.test.ts.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pino from 'pino';
import { VaultResponseError, VaultUnavailableError } from '../../src/errors.ts';
import { algSpec } from '../../src/jwt/algorithms.ts';
import { retryingSend } from '../../src/signer/retry.ts';
import type { RefusalVerdict } from '../../src/vault/auth.ts';
import { CircuitBreaker } from '../../src/vault/breaker.ts';
import { VaultHealthMonitor } from '../../src/vault/health-monitor.ts';
import type { VaultHealth } from '../../src/vault/http.ts';

const lane = { name: 'app', version: 3, keyType: 'ecdsa-p256', spec: algSpec('ES256') };
const OK = [{ signature: 'vault:v3:sig' }];

function harness(answers: Array<Error | typeof OK>, verdict: RefusalVerdict = 'failed') {
  const calls: Array<{ token: string }> = [];
  const retries: string[] = [];
  let token = 'first';
  const send = retryingSend({
    transit: {
      signBatch: async () => {
        calls.push({ token });
        const answer = answers.shift()!;
        if (answer instanceof Error) throw answer;
        return answer as never;
      },
    },
    auth: {
      current: () => token,
      afterRefusal: async () => {
        if (verdict === 'replaced') token = 'second';
        return verdict;
      },
    },
    mount: 'transit',
    onRetry: (reason) => retries.push(reason),
  });
  return { send, calls, retries };
}

describe('sign retry policy', () => {
  test('a 5xx or a dropped connection is tried once more inside the deadline, and counted', async () => {
    const { send, calls, retries } = harness([new VaultUnavailableError('sign', 'x', 1, 'unavailable'), OK]);
    assert.deepEqual(await send(lane, ['aW4='], performance.now() + 2000), OK);
    assert.equal(calls.length, 2);
    assert.deepEqual(retries, ['unavailable']);
  });

  test('no second try when the callers\' deadline is too close, nor a third one', async () => {
    const late = harness([new VaultUnavailableError('sign', 'x', 1, 'unreachable'), OK]);
    await assert.rejects(late.send(lane, ['aW4='], performance.now() + 100), { reason: 'unreachable' });
    assert.equal(late.calls.length, 1);
    const twice = harness([new VaultUnavailableError('sign', 'x', 1, 'unreachable'), new VaultUnavailableError('sign', 'y', 1, 'unavailable'), OK]);
    await assert.rejects(twice.send(lane, ['aW4='], performance.now() + 2000), { reason: 'unavailable' });
    assert.equal(twice.calls.length, 2);
  });

  test('a Vault refusal of the request itself (4xx other than 403) is not tried again', async () => {
    const { send, calls, retries } = harness([new VaultResponseError('bad input', 400), OK]);
    await assert.rejects(send(lane, ['aW4='], performance.now() + 2000), VaultResponseError);
    assert.equal(calls.length, 1);
    assert.deepEqual(retries, []);
  });

  test('a 403 after which auth replaced the token is tried again with the new token', async () => {
    const { send, calls, retries } = harness([new VaultUnavailableError('sign', 'x', 2, 'refused'), OK], 'replaced');
    assert.deepEqual(await send(lane, ['aW4='], performance.now() + 2000), OK);
    assert.deepEqual(calls.map((c) => c.token), ['first', 'second']);
    assert.deepEqual(retries, ['refused']);
  });

  test('a 403 with a valid token is the policy\'s refusal, and names the path the policy lacks', async () => {
    const { send, calls } = harness([new VaultUnavailableError('sign', 'x', 2, 'refused'), OK], 'valid');
    await assert.rejects(send(lane, ['aW4='], performance.now() + 2000), (error: unknown) => {
      assert.ok(error instanceof VaultUnavailableError);
      assert.equal(error.reason, 'refused');
      assert.match(error.message, /lacks transit\/sign\/app; see vault-policy\.hcl/);
      return true;
    });
    assert.equal(calls.length, 1);
  });
});

describe('Vault health monitor', () => {
  function monitor(healths: VaultHealth[], authenticated = true) {
    const breaker = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 60_000, maxCooldownMs: 60_000 });
    const probes: boolean[] = [];
    const health = new VaultHealthMonitor(
      { health: async () => healths.shift() ?? 'unreachable', breaker },
      { status: () => ({ authenticated, method: 'token' }) },
      pino({ level: 'silent' }),
      { intervalMs: 10_000, onProbe: (reachable) => probes.push(reachable) },
    );
    return { health, breaker, probes };
  }

  test('before the first probe Vault is unusable since start-up; an active Vault with a token is usable', async () => {
    const before = Date.now();
    const { health, probes } = monitor(['active']);
    const first = health.status();
    assert.equal(first.usable, false);
    assert.ok(first.unusableSince! >= before);
    await health.probe();
    const now = health.status();
    assert.equal(now.health, 'active');
    assert.equal(now.usable, true);
    assert.equal(now.unusableSince, undefined);
    assert.deepEqual(probes, [true]);
  });

  test('sealed Vault: not reachable, unusable since the probe that saw it', async () => {
    const { health, probes } = monitor(['standby', 'sealed']);
    await health.probe();
    assert.equal(health.status().usable, true);
    const before = Date.now();
    await health.probe();
    const status = health.status();
    assert.equal(status.health, 'sealed');
    assert.equal(status.reachable, false);
    assert.ok(status.unusableSince! >= before);
    assert.deepEqual(probes, [true, false]);
  });

  test('an open circuit makes Vault unreachable for signing; a probe that sees Vault answer closes it', async () => {
    const { health, breaker } = monitor(['active', 'active']);
    await health.probe();
    breaker.failure(Date.now());
    assert.equal(breaker.state, 'open');
    assert.equal(health.status().reachable, false);
    await health.probe();
    assert.equal(breaker.state, 'closed');
    assert.equal(health.status().usable, true);
  });

  test('without an accepted token Vault is reachable but not usable', async () => {
    const { health } = monitor(['active'], false);
    await health.probe();
    assert.deepEqual([health.status().reachable, health.status().usable], [true, false]);
  });
});
