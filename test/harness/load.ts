// Concurrent signing clients for fault tests: N clients sign in a loop over keep-alive connections until stopped,
// and every answer is recorded (status, latency, Retry-After, token, first error message). Bounded by the caller's
// stop(); each request carries its own timeout so a hang shows as status 0, never as a stuck test.

import { Agent, request } from 'undici';

export interface Outcome {
  /** ms since the load started, when the request was sent. */
  at: number;
  status: number;
  ms: number;
  retryAfter?: string;
  token?: string;
  kid?: string;
  error?: string;
}

export interface Load {
  outcomes: Outcome[];
  /** ms since the load started. */
  elapsed(): number;
  stop(): Promise<Outcome[]>;
}

export function signLoad(url: string, options: { clients: number; path?: string; body?: () => unknown; pauseMs?: number; pauseAfterFailureMs?: number; timeoutMs?: number }): Load {
  const started = performance.now();
  const outcomes: Outcome[] = [];
  const agent = new Agent({ connections: options.clients, keepAliveTimeout: 10_000 });
  const path = options.path ?? '/v1/sign/app';
  const body = options.body ?? (() => ({ claims: { sub: 'load' } }));
  let running = true;
  const client = async () => {
    while (running) {
      const at = performance.now() - started;
      try {
        const response = await request(`${url}${path}`, {
          method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body()),
          signal: AbortSignal.timeout(options.timeoutMs ?? 15_000),
        });
        const json = (await response.body.json()) as { token?: string; kid?: string; errors?: string[] };
        const retryAfter = response.headers['retry-after'];
        outcomes.push({
          at, status: response.statusCode, ms: performance.now() - started - at,
          retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined, token: json.token, kid: json.kid, error: json.errors?.[0],
        });
      } catch (error) {
        outcomes.push({ at, status: 0, ms: performance.now() - started - at, error: (error as Error).message });
      }
      const failed = outcomes.at(-1)!.status !== 200;
      const pause = failed && options.pauseAfterFailureMs ? options.pauseAfterFailureMs : options.pauseMs;
      if (pause) await new Promise((r) => setTimeout(r, pause));
    }
  };
  const workers = Array.from({ length: options.clients }, client);
  return {
    outcomes,
    elapsed: () => performance.now() - started,
    async stop() {
      running = false;
      await Promise.all(workers);
      await agent.close();
      return outcomes;
    },
  };
}

/** Every non-200 answer that is not a 503 with Retry-After, described for an assertion message. */
export function badFailures(outcomes: readonly Outcome[]): string[] {
  return outcomes.filter((o) => o.status !== 200 && !(o.status === 503 && o.retryAfter))
    .slice(0, 5).map((o) => `${o.status} at ${Math.round(o.at)} ms after ${Math.round(o.ms)} ms: ${o.error ?? ''}`);
}
