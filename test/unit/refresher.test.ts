import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import pino from 'pino';
import { buildConfig } from '../../src/config.ts';
import { Keyring } from '../../src/keys/keyring.ts';
import { KeyRefresher } from '../../src/keys/refresher.ts';
import type { VaultControl } from '../../src/vault/control.ts';

/** A control plane whose key reads the test answers one by one (the answers need not parse: only reads count). */
function controlledReads() {
  const reads: Array<() => void> = [];
  const control = {
    readTransitKey: () => new Promise((resolve) => reads.push(() => resolve({ data: {} }))),
  } as unknown as VaultControl;
  return { control, reads };
}

describe('KeyRefresher.refreshSince', () => {
  // Found by test/integration/batcher.test.ts under load: after min_encryption_version was raised, the signer's
  // re-read joined a periodic read that had started before the change, signed with the old version again, and
  // answered "Vault refused the key version" to the caller.
  test('a read under way that started before `since` is not enough: another read starts after it', async () => {
    const config = buildConfig({ keys: [{ name: 'app', issuer: 'https://i' }] }, { VAULT_TOKEN: 't' });
    const { control, reads } = controlledReads();
    const refresher = new KeyRefresher(config, control, new Keyring({ clockSkew: 1, refreshInterval: 1 }), pino({ level: 'silent' }));
    const periodic = refresher.refresh();
    await new Promise((r) => setTimeout(r, 5));
    let done = false;
    const forced = refresher.refreshSince(Date.now()).then(() => {
      done = true;
    });
    assert.equal(reads.length, 1);
    reads[0]!();
    await periodic;
    await tick();
    assert.equal(done, false, 'the stale read does not satisfy it');
    assert.equal(reads.length, 2, 'a new read started');
    reads[1]!();
    await forced;
    // A read that started at or after `since` is shared.
    const next = refresher.refresh();
    const joined = refresher.refreshSince(Date.now() - 1000);
    assert.equal(reads.length, 3);
    reads[2]!();
    await Promise.all([next, joined]);
    assert.equal(reads.length, 3);
  });
});
