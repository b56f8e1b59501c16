// Structured JSON logs (pino). Every request line carries the request id. Anything that could hold a secret or
// personal data is redacted by path, as a second line of defence: the code never passes tokens, Vault tokens,
// secret ids or claim values to the logger in the first place.

import pino, { type Logger } from 'pino';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-vault-token"]',
  'req.headers.cookie',
  'token', '*.token', 'client_token', '*.client_token', 'secret_id', '*.secret_id', 'jwt', '*.jwt',
  'claims', '*.claims', 'body', '*.body',
  'headers["x-vault-token"]', '*.headers["x-vault-token"]', 'config.headers', '*.config.headers',
];

/** The request id a request's logger carries (see requestLogger). */
const REQUEST_ID = Symbol('signet.requestId');

type RequestLogger = Logger & { [REQUEST_ID]?: string };

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({
    level,
    base: { service: 'signet' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    // A request's lines get its id here, when a line is written, instead of as a binding of its child logger: pino
    // passes bindings through the redaction paths when the child is made, which cost about 35 µs per request
    // (--cpu-prof), on every request, whether it logs a line or not.
    mixin: (_object, _level, logger) => {
      const requestId = (logger as RequestLogger)[REQUEST_ID];
      return requestId === undefined ? {} : { reqId: requestId };
    },
  }, destination);
}

/**
 * fastify's childLoggerFactory: a request's logger, whose lines carry `reqId` (fastify's bindings: { reqId }). A
 * child of it (with bindings of its own) inherits the id.
 */
export function requestLogger(logger: Logger, bindings: { reqId?: unknown }, options?: pino.ChildLoggerOptions): Logger {
  // With no options, pino makes a child without looking for any (fastify passes {} when there are none).
  const child: RequestLogger = options && Object.keys(options).length > 0 ? logger.child({}, options) : logger.child({});
  child[REQUEST_ID] = String(bindings.reqId);
  return child;
}
