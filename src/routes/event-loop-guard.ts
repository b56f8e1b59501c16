// Event-loop protection for the routes registered in the same plugin context (the sign routes): when the event
// loop lags, new signs are refused at once with 503 rather than queued to answer too late, while health, the
// JWKS and metrics (other contexts) keep answering.
//
// The delay is sampled every 250 ms (how late the sampling timer and a probe timer run), and the guard trips only
// after two lagging samples in a row: one long turn (a start-up burst, a key import) is not overload, while a
// sustained lag of 200 ms per turn means every sign already answers hundreds of milliseconds late.

import type { FastifyInstance } from 'fastify';

export interface EventLoopGuardOptions {
  /** Event-loop delay in a sample, ms, above which the sample counts as lagging. */
  maxDelayMs: number;
  sampleMs: number;
  /** Consecutive lagging samples before signs are refused. */
  samples: number;
  onShed: () => void;
}

export const DEFAULT_EVENT_LOOP_GUARD = { maxDelayMs: 200, sampleMs: 250, samples: 2 } as const;

export async function eventLoopGuard(app: FastifyInstance, options: EventLoopGuardOptions): Promise<void> {
  let lagging = 0;
  let last = performance.now();
  // The delay of a sample: how late this timer ran, or how long a probe timer set at the previous sample waited
  // for its turn, whichever is worse (a loop busy in long turns delays the probe by a whole turn).
  let probeDelay = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    const delay = Math.max(now - last - options.sampleMs, probeDelay);
    last = now;
    lagging = delay > options.maxDelayMs ? lagging + 1 : 0;
    probeDelay = 0;
    const probe = setTimeout(() => {
      probeDelay = Math.max(probeDelay, performance.now() - now - 1);
    }, 1);
    probe.unref();
  }, options.sampleMs);
  timer.unref();
  app.addHook('onClose', async () => {
    clearInterval(timer);
  });
  app.addHook('onRequest', (_request, reply, done) => {
    if (lagging < options.samples) return done();
    options.onShed();
    reply.code(503).header('retry-after', '1').send({ errors: ['Signet is overloaded (eventLoopDelay); retry shortly'] });
  });
}
