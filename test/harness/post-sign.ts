// A sign request as a well-behaved client sends it. (tests-a adds the same postSign to test/harness/signet.ts; when
// both are merged, this file goes and its importers take that one.)

import type { TestSignet } from './signet.ts';

/**
 * POSTs to a sign route as a well-behaved client does: a 503 from the event-loop guard ("Signet is overloaded
 * (eventLoopDelay)", with Retry-After; a loaded CI can trip it) is sent again after Retry-After, up to 20 times.
 * Every other answer, 503s for any other reason included, is returned as it came. Such a 503 never reaches the
 * batcher, the breaker or Vault, so counting what did is unaffected.
 */
export async function postSign(signet: TestSignet, path: string, body: unknown, headers?: Record<string, string>): ReturnType<TestSignet['post']> {
  for (let attempt = 0; ; attempt++) {
    const answer = await signet.post(path, body, headers);
    const overloaded = answer.status === 503 && /^Signet is overloaded \(eventLoopDelay\)/.test(answer.body?.errors?.[0] ?? '');
    if (!overloaded || attempt === 20) return answer;
    await new Promise((r) => setTimeout(r, Number(answer.headers.get('retry-after') ?? 1) * 1000));
  }
}
