// The log line of an alias (legacy_kid, accept_missing_kid) or static key that starts or stops accepting old tokens.

import type { Logger } from 'pino';
import type { LegacyChange } from './keyring.ts';

const iso = (seconds: number | undefined): string => (seconds === undefined ? '?' : new Date(Math.round(seconds * 1000)).toISOString());

export function logLegacyChange(log: Logger, change: LegacyChange): void {
  const what = change.kind === 'static' ? `static key ${change.key} (kid ${change.kid})`
    : change.kind === 'legacy_kid' ? `legacy kid ${change.kid} of key ${change.key}`
      : `tokens without a kid (accept_missing_kid) for key ${change.key}`;
  const fields = { event: 'legacy_alias', kind: change.kind, key: change.key, kid: change.kid, from: change.from, to: change.to, until: iso(change.until) };
  switch (change.to) {
    case 'active':
      log.info(fields, `${what}: old tokens are accepted until ${iso(change.until)}`);
      return;
    case 'expired':
      log.warn(fields, `${what}: expired at ${iso(change.until)}; old tokens are refused and the alias left the JWKS (remove the setting from the configuration)`);
      return;
    case 'version-retired':
      log.warn(fields, `${what}: the imported version was retired, so old tokens are refused and the alias left the JWKS`);
      return;
    default:
      log.error(fields, `${what}: cannot be honoured; old tokens are refused`);
  }
}
