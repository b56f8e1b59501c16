// VaultAuth's state machine, driven through the interleavings a calm integration test never meets: a 403 during
// a login, a burst of 403s, a permission-denied 403 with a valid token, a login that ends in the same turn as a
// 403, renewal failing after a re-login. The Vault client is scripted (the test decides when each call answers);
// the real client and a real Vault are exercised in test/integration/auth.test.ts and hardening.test.ts.

import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import type { AuthConfig } from '../../src/vault/config.ts';
import { VaultUnavailableError } from '../../src/errors.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { VaultAuth } from '../../src/vault/auth.ts';
import type { VaultControl } from '../../src/vault/control.ts';

type Body = Record<string, any>;

/** A scripted Vault: logins wait until the test answers them; lookups answer from the set of valid tokens. */
function scriptedVault() {
  const calls: string[] = [];
  const valid = new Set<string>();
  const logins: Array<PromiseWithResolvers<Body>> = [];
  let issued = 0;
  const renewals: Array<PromiseWithResolvers<Body>> = [];
  const control = {
    onRefused: (_token: string) => {},
    token: '',
    setToken(token: string) {
      this.token = token;
    },
    login(): Promise<Body> {
      calls.push('login');
      const pending = Promise.withResolvers<Body>();
      logins.push(pending);
      return pending.promise;
    },
    async read(operation: string, path: string): Promise<Body> {
      calls.push(`read ${path}`);
      const token = this.token;
      await tick();
      if (!valid.has(token)) {
        this.onRefused(token);
        throw new VaultUnavailableError(operation, 'Vault refused Signet\'s token', 2, 'refused');
      }
      return { data: { ttl: 3600, renewable: true } };
    },
    write(_operation: string, path: string): Promise<Body> {
      calls.push(`write ${path}`);
      const pending = Promise.withResolvers<Body>();
      renewals.push(pending);
      return pending.promise;
    },
  };
  return {
    control,
    calls,
    valid,
    logins,
    renewals,
    /** Answers the oldest open login with a new valid token; returns it. */
    answerLogin(ttl = 3600): string {
      const token = `t${++issued}`;
      valid.add(token);
      logins.shift()!.resolve({ auth: { client_token: token, lease_duration: ttl, renewable: true } });
      return token;
    },
    count: (what: string) => calls.filter((c) => c === what).length,
  };
}

const APPROLE: AuthConfig = { method: 'approle', mount: 'approle', roleId: 'role' };

async function started(vault: ReturnType<typeof scriptedVault>, config: AuthConfig = APPROLE) {
  const auth = new VaultAuth(config, vault.control as unknown as VaultControl, createLogger('silent'));
  const start = auth.start();
  await tick();
  const token = vault.answerLogin();
  await start;
  return { auth, token };
}

describe('VaultAuth: one authentication in flight, shared by every caller', () => {
  test('a 403 for the current token during a login starts no second login', async () => {
    const vault = scriptedVault();
    const { auth, token } = await started(vault);
    vault.valid.delete(token);
    auth.rejected(token);
    while (vault.logins.length === 0) await tick();
    assert.equal(vault.count('login'), 2);
    // More 403s with the same (revoked) token arrive while the re-login is out.
    for (let i = 0; i < 50; i++) auth.rejected(token);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(vault.count('login'), 2, 'the re-login in flight is shared');
    const fresh = vault.answerLogin();
    await tick();
    assert.equal(auth.current(), fresh);
    assert.equal(auth.status().authenticated, true);
    auth.stop();
  });

  test('a burst of 403s costs one lookup and one login; every caller learns the token was replaced', async () => {
    const vault = scriptedVault();
    const { auth, token } = await started(vault);
    vault.valid.delete(token);
    const verdicts = Array.from({ length: 64 }, () => auth.afterRefusal(token, 5000));
    while (vault.logins.length === 0) await tick();
    vault.answerLogin();
    assert.deepEqual(new Set(await Promise.all(verdicts)), new Set(['replaced']));
    assert.equal(vault.count('read auth/token/lookup-self'), 1);
    assert.equal(vault.count('login'), 2);
    auth.stop();
  });

  test('a 403 with a valid token (a policy refused one path) logs nobody in, keeps authenticated, and is not looked up again at once', async () => {
    const vault = scriptedVault();
    const { auth, token } = await started(vault);
    assert.equal(await auth.afterRefusal(token, 5000), 'valid');
    assert.equal(await auth.afterRefusal(token, 5000), 'valid');
    assert.equal(vault.count('read auth/token/lookup-self'), 1, 'the verdict stands for a moment');
    assert.equal(vault.count('login'), 1);
    assert.equal(auth.status().authenticated, true);
    auth.stop();
  });

  test('authenticated is false from the moment Vault says the token is gone until a new login succeeds', async () => {
    const vault = scriptedVault();
    const { auth, token } = await started(vault);
    vault.valid.delete(token);
    auth.rejected(token);
    while (vault.logins.length === 0) await tick();
    assert.equal(auth.status().authenticated, false);
    vault.answerLogin();
    await tick();
    assert.equal(auth.status().authenticated, true);
    auth.stop();
  });

  test('a 403 for a token already replaced is ignored (a call that was out during the login)', async () => {
    const vault = scriptedVault();
    const { auth, token } = await started(vault);
    vault.valid.delete(token);
    auth.rejected(token);
    while (vault.logins.length === 0) await tick();
    const fresh = vault.answerLogin();
    // Same turn as the login's end: a late 403 for the old token.
    assert.equal(await auth.afterRefusal(token, 5000), 'replaced');
    await tick();
    assert.equal(vault.count('login'), 2);
    assert.equal(auth.current(), fresh);
    auth.stop();
  });

  test('a failed login is retried with backoff; 403s meanwhile do not cut the backoff short', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const vault = scriptedVault();
    const { auth, token } = await started(vault);
    vault.valid.delete(token);
    auth.rejected(token);
    while (vault.logins.length === 0) await tick();
    vault.logins.shift()!.reject(new VaultUnavailableError('login', 'unreachable', 1, 'unreachable'));
    await tick();
    await tick();
    for (let i = 0; i < 20; i++) auth.rejected(token);
    await tick();
    assert.equal(vault.count('login'), 2, 'no login before the backoff ends');
    t.mock.timers.tick(1000);
    await tick();
    assert.equal(vault.count('login'), 3, 'the retry came after the backoff');
    vault.answerLogin();
    await tick();
    assert.equal(auth.status().authenticated, true);
    auth.stop();
  });

  /** A started auth (fake timers) whose renewal is out: at 2/3 of the 3600 s TTL. */
  async function renewing(t: TestContext) {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const vault = scriptedVault();
    const { auth, token } = await started(vault);
    t.mock.timers.tick(2400_000);
    await tick();
    assert.equal(vault.count('write auth/token/renew-self'), 1);
    return { vault, auth, token };
  }

  test('renewal timer and re-login: a renewal that answers after a re-login does not overwrite it', async (t) => {
    const { vault, auth, token } = await renewing(t);
    // Meanwhile the token is revoked and a 403 leads to a re-login.
    vault.valid.delete(token);
    auth.rejected(token);
    while (vault.logins.length === 0) await tick();
    const fresh = vault.answerLogin();
    await tick();
    // The old renewal answers late (with the old token's data): it must change nothing.
    vault.renewals.shift()!.resolve({ auth: { lease_duration: 10, renewable: true } });
    await tick();
    assert.equal(auth.current(), fresh);
    assert.ok((auth.status().ttlSeconds ?? 0) > 3000, 'the new token\'s TTL stands');
    assert.equal(vault.count('login'), 2);
    auth.stop();
  });

  test('a renewal refused (403) for a token that still works leads to one new login, not a token left to lapse', async (t) => {
    const { vault, auth, token } = await renewing(t);
    // OpenBao's Kubernetes auth: the renewal is refused (the login's JWT expired) while the token still works.
    vault.control.onRefused(token);
    vault.renewals.shift()!.reject(new VaultUnavailableError('token_renew', 'Vault refused Signet\'s token', 2, 'refused'));
    for (let i = 0; i < 50 && vault.logins.length === 0; i++) await tick();
    assert.equal(vault.logins.length, 1, 'a new login started while the token still works');
    assert.equal(vault.count('read auth/token/lookup-self'), 1, 'one lookup tells the token still works');
    const fresh = vault.answerLogin();
    await tick();
    assert.equal(auth.current(), fresh);
    assert.equal(auth.status().authenticated, true);
    assert.equal(vault.count('login'), 2, 'exactly one new login');
    auth.stop();
  });

  test('a refused renewal and a sign\'s 403 in the same turn, token still working: one lookup, one login', async (t) => {
    const { vault, auth, token } = await renewing(t);
    // Both 403s land before either is looked into.
    vault.control.onRefused(token);
    auth.rejected(token);
    vault.renewals.shift()!.reject(new VaultUnavailableError('token_renew', 'Vault refused Signet\'s token', 2, 'refused'));
    for (let i = 0; i < 50 && vault.logins.length === 0; i++) await tick();
    assert.equal(vault.logins.length, 1);
    assert.equal(vault.count('read auth/token/lookup-self'), 1, 'the two 403s share one lookup');
    vault.answerLogin();
    for (let i = 0; i < 20; i++) await tick();
    assert.equal(vault.count('login'), 2, 'one new login, not one per 403');
    assert.equal(auth.status().authenticated, true);
    auth.stop();
  });

  test('a static token that Vault refuses: authenticated false, no login possible, lookups back off', async () => {
    const vault = scriptedVault();
    vault.valid.add('static');
    const auth = new VaultAuth({ method: 'token', token: 'static' }, vault.control as unknown as VaultControl, createLogger('silent'));
    await auth.start();
    assert.equal(auth.status().authenticated, true);
    vault.valid.delete('static');
    assert.equal(await auth.afterRefusal('static', 5000), 'failed');
    assert.equal(auth.status().authenticated, false);
    const lookups = vault.count('read auth/token/lookup-self');
    for (let i = 0; i < 20; i++) assert.equal(await auth.afterRefusal('static', 5000), 'failed');
    assert.equal(vault.count('read auth/token/lookup-self'), lookups, 'no lookup per 403 while the retry waits');
    auth.stop();
  });
});
