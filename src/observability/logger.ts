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

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({
    level,
    base: { service: 'signet' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }, destination);
}
