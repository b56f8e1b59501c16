// The sign retry (DESIGN: a sign call that Vault did not answer, or answered 5xx, is tried once more inside the
// callers' deadline), against a real Vault behind a TCP proxy that resets exactly the connections carrying chosen
// sign calls. Checked through what an operator sees: the HTTP answers, signet_sign_retries_total, the batch-size
// histogram's count (one per Vault call the batcher made) and the calls that reached the wire.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { metricValue } from '../harness/metrics.ts';
import { postSign, startSignet, type TestSignet } from '../harness/signet.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const SIGN_CALL = /^POST \/v1\/transit\/sign\/app /;
const LOCKED_CALL = /^POST \/v1\/transit\/sign\/locked /;

/** What the test reads from /metrics and the proxy at one moment. */
interface Snapshot {
  retries: number;
  retriesUnreachable: number;
  retriesUnavailable: number;
  /** Vault sign calls the batcher made (one histogram observation per call, retries not included). */
  batches: number;
  /** Sign requests that reached the proxy (each try of each call). */
  onWire: number;
}

describe('sign retry against a real Vault behind a connection-resetting proxy', () => {
  let vault: TestVault;
  let proxy: TcpProxy;
  let signet: TestSignet;

  async function snapshot(key = 'app', wire = SIGN_CALL): Promise<Snapshot> {
    const text = (await signet.get('/metrics')).text;
    return {
      retries: metricValue(text, 'signet_sign_retries_total'),
      retriesUnreachable: metricValue(text, 'signet_sign_retries_total', { reason: 'unreachable' }),
      retriesUnavailable: metricValue(text, 'signet_sign_retries_total', { reason: 'unavailable' }),
      batches: metricValue(text, 'signet_sign_batch_size_count', { key }),
      onWire: proxy.seen(wire),
    };
  }

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ed25519');
    await vault.createKey('locked', 'ed25519');
    // Signet's token may read every key but sign only with "app": a sign with "locked" is Vault's 403 to a valid token.
    await vault.api('PUT', 'sys/policies/acl/app-only', {
      policy: 'path "transit/keys/*" { capabilities = ["read"] }\npath "transit/sign/app" { capabilities = ["update"] }\npath "auth/token/*" { capabilities = ["read", "update"] }',
    });
    const created = await vault.api('POST', 'auth/token/create', { policies: ['app-only'], ttl: '1h' });
    const token = (created.auth as { client_token: string }).client_token;
    proxy = await startTcpProxy(vault.address);
    signet = await startSignet(vault, [{ name: 'app' }, { name: 'locked' }], {
      // A deadline far above a loaded CI's Vault latency: the retry must fit inside it (left > 200 ms).
      config: { vault: { address: proxy.address, sign_timeout: '10s' } },
      env: { VAULT_TOKEN: token },
    });
    await signet.ready(15_000);
    const warm = await postSign(signet, '/v1/sign/app', { claims: {} });
    assert.equal(warm.status, 200, JSON.stringify(warm.body));
  });

  afterEach(() => proxy.cancel());

  after(async () => {
    await signet?.close();
    await proxy?.close();
    await vault?.stop();
  });

  test('one sign call dropped by the network while 32 clients sign: every sign succeeds, one retry counted', async () => {
    const before = await snapshot();
    proxy.resetNext(SIGN_CALL, 1);
    const answers = await Promise.all(Array.from({ length: 32 }, (_, i) => postSign(signet, '/v1/sign/app', { claims: { sub: `client-${i}` } })));
    for (const answer of answers) assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(proxy.resets(), 1, 'the proxy reset one call');
    const now = await snapshot();
    assert.equal(now.retries - before.retries, 1, 'signet_sign_retries_total moved by one');
    assert.equal(now.retriesUnreachable - before.retriesUnreachable, 1, 'counted as reason="unreachable"');
    // On the wire: each call the batcher made, plus exactly one second try.
    assert.equal(now.onWire - before.onWire, now.batches - before.batches + 1);
    // Every token is a good one (the retried batch's included).
    const verified = await Promise.all(answers.map((a) => signet.post('/v1/verify', { token: a.body.token })));
    for (const v of verified) assert.equal(v.status, 200, JSON.stringify(v.body));
    assert.deepEqual(verified.map((v) => v.body.claims.sub).sort(), Array.from({ length: 32 }, (_, i) => `client-${i}`).sort());
  });

  test('a 502 from a load balancer in front of Vault on one call while 32 clients sign: every sign succeeds, one retry counted', async () => {
    const before = await snapshot();
    const resetsBefore = proxy.resets();
    proxy.answerNext(SIGN_CALL, 1, 502);
    const answers = await Promise.all(Array.from({ length: 32 }, () => postSign(signet, '/v1/sign/app', { claims: {} })));
    for (const answer of answers) assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(proxy.resets() - resetsBefore, 1);
    const now = await snapshot();
    assert.equal(now.retries - before.retries, 1);
    assert.equal(now.retriesUnavailable - before.retriesUnavailable, 1, 'counted as reason="unavailable"');
    assert.equal(now.onWire - before.onWire, now.batches - before.batches + 1);
  });

  test('a retry that is dropped too is not tried a third time: 503, one retry counted, two calls on the wire', async () => {
    const resetsBefore = proxy.resets();
    const before = await snapshot();
    proxy.resetNext(SIGN_CALL, 2);
    const answer = await postSign(signet, '/v1/sign/app', { claims: {} });
    assert.equal(answer.status, 503, JSON.stringify(answer.body));
    assert.equal(proxy.resets() - resetsBefore, 2);
    const now = await snapshot();
    assert.equal(now.batches - before.batches, 1, 'one call');
    assert.equal(now.onWire - before.onWire, 2, 'tried twice on the wire');
    assert.equal(now.retries - before.retries, 1);
    // The next sign finds Vault as it is: answering.
    const next = await postSign(signet, '/v1/sign/app', { claims: {} });
    assert.equal(next.status, 200, JSON.stringify(next.body));
  });

  test('a lone batch_input of 64 leaves as two calls of 32; one dropped by the network is retried: 64 tokens that verify', async () => {
    const before = await snapshot();
    proxy.resetNext(SIGN_CALL, 1);
    const items = Array.from({ length: 64 }, (_, i) => ({ claims: { sub: `item-${i}` } }));
    const answer = await postSign(signet, '/v1/sign/app', { batch_input: items });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const results = answer.body.batch_results as Array<{ token?: string; error?: string }>;
    assert.equal(results.length, 64);
    assert.ok(results.every((r) => typeof r.token === 'string'), JSON.stringify(results.find((r) => !r.token)));
    const now = await snapshot();
    assert.equal(now.batches - before.batches, 2, 'spread: two calls (the key was idle)');
    assert.equal(now.onWire - before.onWire, 3, 'two calls and one second try on the wire');
    assert.equal(now.retries - before.retries, 1);
    const verified = await Promise.all(results.map((r) => signet.post('/v1/verify', { token: r.token })));
    assert.deepEqual(verified.map((v) => v.body.claims?.sub), items.map((i) => i.claims.sub), 'each item its own token, in order');
  });

  test('32 callers\' batch_input of 64 at once, one Vault call dropped: every item of every answer is a token that verifies', async () => {
    const before = await snapshot();
    const resetsBefore = proxy.resets();
    proxy.resetNext(SIGN_CALL, 1);
    const answers = await Promise.all(Array.from({ length: 32 }, (_, c) => postSign(signet, '/v1/sign/app', {
      batch_input: Array.from({ length: 64 }, (_, i) => ({ claims: { sub: `c${c}-i${i}` } })),
    })));
    const tokens: string[] = [];
    for (const [c, answer] of answers.entries()) {
      assert.equal(answer.status, 200, JSON.stringify(answer.body).slice(0, 500));
      const results = answer.body.batch_results as Array<{ token?: string; error?: string }>;
      assert.ok(results.length === 64 && results.every((r) => r.token), `caller ${c}: ${JSON.stringify(results.find((r) => !r.token))}`);
      tokens.push(...results.map((r) => r.token!));
    }
    assert.equal(proxy.resets() - resetsBefore, 1, 'the proxy dropped one call');
    const now = await snapshot();
    assert.equal(now.retries - before.retries, 1, 'one retry');
    assert.equal(now.onWire - before.onWire, now.batches - before.batches + 1, 'every call once, the dropped one twice');
    // Every token verifies and carries the claims of its own item (a sample of 256 of the 2048).
    const sample = tokens.filter((_, i) => i % 8 === 0);
    const verified = await Promise.all(sample.map((token) => signet.post('/v1/verify', { token })));
    for (const v of verified) assert.equal(v.status, 200, JSON.stringify(v.body));
    assert.deepEqual(verified.map((v) => v.body.claims.sub), Array.from({ length: 2048 }, (_, i) => `c${Math.floor(i / 64)}-i${i % 64}`).filter((_, i) => i % 8 === 0));
  });

  test('a refusal by Vault (403 to a valid token: the policy lacks the key) is not retried', async () => {
    const before = await snapshot('locked', LOCKED_CALL);
    const answer = await postSign(signet, '/v1/sign/locked', { claims: {} });
    assert.equal(answer.status, 503, JSON.stringify(answer.body));
    assert.match(JSON.stringify(answer.body), /permission denied/);
    const now = await snapshot('locked', LOCKED_CALL);
    assert.equal(now.batches - before.batches, 1);
    assert.equal(now.onWire - before.onWire, 1, 'one call on the wire: no second try');
    assert.equal(now.retries - before.retries, 0, 'signet_sign_retries_total did not move');
    // The token is still Signet's: the 403 was the policy's, so no new login and no retry with a new token.
    const ok = await postSign(signet, '/v1/sign/app', { claims: {} });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });
});
