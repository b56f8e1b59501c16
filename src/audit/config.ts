// The `audit:` block of the configuration: where audit records go, how `sub` is hashed, and whether a sign whose
// record cannot be written is refused (fail closed, the default) or answered anyway (an explicit opt-out).

import { ConfigError } from '../errors.ts';

export interface AuditConfig {
  /** Append-only JSON-lines file (created 0600, reopened on SIGHUP and when moved away); undefined: none. */
  file?: string;
  /** Also write each record to stdout, as a line whose `type` is "audit" (kept apart from the operational log). */
  stdout: boolean;
  /** File holding the secret of the HMAC-SHA-256 of `sub` (at least 32 bytes). */
  subjectKeyFile: string;
  /** true (default): a sign whose record cannot be written answers 503 and hands out no token. */
  failClosed: boolean;
}

const FIELDS = ['file', 'stdout', 'subject_key_file', 'fail_closed'];

/** `audit` from the configuration document; undefined when the block is absent (auditing off). */
export function parseAuditConfig(raw: unknown): AuditConfig | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('audit', 'must be a mapping (audit: { file: /path, subject_key_file: /path })');
  const obj = raw as Record<string, unknown>;
  for (const name of Object.keys(obj)) {
    if (!FIELDS.includes(name)) throw new ConfigError(`audit.${name}`, `unknown field (known here: ${FIELDS.join(', ')})`);
  }
  if (obj.file !== undefined && (typeof obj.file !== 'string' || obj.file.length === 0)) {
    throw new ConfigError('audit.file', 'must be a path to a file (created 0600 when absent)');
  }
  for (const name of ['stdout', 'fail_closed'] as const) {
    if (obj[name] !== undefined && typeof obj[name] !== 'boolean') throw new ConfigError(`audit.${name}`, 'must be true or false');
  }
  const file = obj.file as string | undefined;
  const stdout = obj.stdout === true;
  if (file === undefined && !stdout) throw new ConfigError('audit', 'needs a sink: audit.file, audit.stdout: true, or both');
  if (typeof obj.subject_key_file !== 'string' || obj.subject_key_file.length === 0) {
    throw new ConfigError('audit.subject_key_file', 'is required: a file holding the secret (at least 32 bytes) of the HMAC-SHA-256 of sub');
  }
  return { file, stdout, subjectKeyFile: obj.subject_key_file, failClosed: obj.fail_closed !== false };
}
