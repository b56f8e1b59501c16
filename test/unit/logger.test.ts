// Request loggers: a request's lines carry its id (added when a line is written, not bound when its logger is made),
// its children inherit it, other loggers' lines have none, and redaction still applies to every line.

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { createLogger, requestLogger } from '../../src/observability/logger.ts';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger('debug', stream) };
}

describe('requestLogger', () => {
  test("a request's lines carry its reqId, its children's too; other lines none; secrets still redacted", async () => {
    const { lines, logger } = capture();
    const first = requestLogger(logger, { reqId: 'req-1' });
    const second = requestLogger(logger, { reqId: 'req-2' }, {});
    first.info({ token: 'eyJ.secret.token', status: 200 }, 'request');
    second.child({ component: 'vault' }).warn({ client_token: 'hvs.secret' }, 'nested');
    logger.info('not a request');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(lines.length, 3);
    assert.deepEqual([lines[0]!.reqId, lines[0]!.token, lines[0]!.status, lines[0]!.msg], ['req-1', '[redacted]', 200, 'request']);
    assert.deepEqual([lines[1]!.reqId, lines[1]!.component, lines[1]!.client_token], ['req-2', 'vault', '[redacted]']);
    assert.equal(lines[2]!.reqId, undefined);
    assert.ok(!JSON.stringify(lines).includes('secret'), 'no secret in any line');
  });

  test('child logger options (a level) still apply', () => {
    const { logger } = capture();
    assert.equal(requestLogger(logger, { reqId: 'r' }, { level: 'warn' }).level, 'warn');
    assert.equal(requestLogger(logger, { reqId: 'r' }).level, 'debug');
  });
});
