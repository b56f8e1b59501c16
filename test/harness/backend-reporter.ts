// A node:test reporter for the integration runs: Node's spec reporter with every test name prefixed by the backend
// the run talked to ("[openbao] rotation > …"), and a closing summary line per backend naming the exact server
// version. `npm test` runs the integration tests once per backend with it:
//   SIGNET_TEST_BACKEND=openbao node --test --test-reporter=./test/harness/backend-reporter.ts …

import { execFileSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { spec } from 'node:test/reporters';
import { BACKEND } from './vault.ts';

interface Event { type: string; data?: { name?: string; skip?: unknown; todo?: unknown; details?: { type?: string } } }

/** The server's own `version` line (the binary is cached by then; this runs once, at the end). */
function serverVersion(): string {
  try {
    const root = new URL('../../', import.meta.url).pathname;
    const bin = execFileSync('bash', [`${root}scripts/vault-bin.sh`, BACKEND], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return execFileSync(bin, ['version'], { encoding: 'utf8' }).trim();
  } catch (error) {
    return `version unknown: ${(error as Error).message.split('\n')[0]}`;
  }
}

export default async function* backendReporter(source: AsyncIterable<Event>): AsyncGenerator<string> {
  const counts = { passed: 0, failed: 0, skipped: 0 };
  async function* tagged(): AsyncGenerator<Event> {
    for await (const event of source) {
      if ((event.type === 'test:pass' || event.type === 'test:fail') && event.data?.details?.type !== 'suite') {
        if (event.type === 'test:fail') counts.failed++;
        else if (event.data?.skip || event.data?.todo) counts.skipped++;
        else counts.passed++;
      }
      if (event.data?.name !== undefined) yield { ...event, data: { ...event.data, name: `[${BACKEND}] ${event.data.name}` } };
      else yield event;
    }
  }
  for await (const chunk of Readable.from(tagged()).pipe(new spec())) yield String(chunk);
  yield `\n[${BACKEND}] backend ${serverVersion()}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`;
}
