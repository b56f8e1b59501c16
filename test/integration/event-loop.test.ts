// Event-loop protection: when Signet's event loop lags (here: blocked for 1.5 s), sign routes answer 503 at once
// with Retry-After instead of queueing work that would answer too late, while health and the JWKS keep answering.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startSignet, eventually } from '../harness/signet.ts';
import { startVault } from '../harness/vault.ts';

test('a lagging event loop sheds signs with 503; health and JWKS still answer; signing comes back', async () => {
  const vault = await startVault();
  try {
    await vault.createKey('app', 'ed25519');
    const signet = await startSignet(vault, [{ name: 'app' }]);
    try {
      await signet.ready(10_000);
      // Make Signet's (this process's) event loop lag, as sustained CPU saturation would: turns of 300 ms.
      let lagging = true;
      const lag = () => {
        const until = Date.now() + 300;
        while (Date.now() < until) { /* busy */ }
        if (lagging) setTimeout(lag, 1);
      };
      setTimeout(lag, 1);
      let shed;
      try {
        shed = await eventually(async () => {
          const r = await signet.post('/v1/sign/app', { claims: {} });
          return r.status === 503 ? r : undefined;
        }, 5000, 'a shed sign');
      } finally {
        lagging = false;
      }
      assert.match(shed.body.errors[0], /^Signet is overloaded \(eventLoopDelay\); retry shortly$/);
      assert.equal(shed.headers.get('retry-after'), '1');
      assert.equal((await signet.get('/healthz')).status, 200);
      assert.equal((await signet.get('/.well-known/jwks.json')).status, 200);
      assert.match((await signet.get('/metrics')).text, /^signet_shed_requests_total\{reason="event_loop"\} [1-9]/m);
      await eventually(async () => (await signet.post('/v1/sign/app', { claims: {} })).status === 200, 5000, 'signing again');
    } finally {
      await signet.close();
    }
  } finally {
    await vault.stop();
  }
});
