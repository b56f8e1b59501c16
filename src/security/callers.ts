// Caller authentication (optional): whoever can make Signet sign owns every service that trusts its tokens, so
// when `callers.tokens_file` is configured every route except the public ones (health, readiness, metrics,
// JWKS, discovery) needs `Authorization: Bearer <token>`. The file holds one token per line, optionally
// `name:token`; several lines may share a name, so a token is rotated by adding the new line, moving callers to
// it, and deleting the old line. The file is re-read when it changes.
//
// Only SHA-256 digests of the tokens are kept, and a presented token is compared with every one of them with
// crypto.timingSafeEqual (no early exit), so neither the comparison nor the position of a match leaks timing.
// Nothing here ever logs or echoes a token, or a line of the file: errors name the line number only.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import type { Logger } from 'pino';
import type { KeyConfig } from '../keys/config.ts';
import { ConfigError, SignetError } from '../errors.ts';

export interface CallersConfig {
  /** File with one bearer token per line, optionally `name:token`. */
  tokensFile: string;
}

export interface CallerEntry {
  /** The caller's name (`name:` prefix of its line); undefined for a token without a name. */
  name?: string;
  digest: Buffer;
}

/** The authenticated caller of a request. */
export interface Caller {
  name?: string;
}

export const MIN_TOKEN_LENGTH = 16;
const MAX_TOKEN_LENGTH = 4096;
const CALLER_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** RFC 6750 b64token. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** 403: the key's caller policy (keys[].callers) does not let this caller sign with it. */
export class CallerPolicyError extends SignetError {
  constructor(message: string) {
    super(403, 'caller_policy', message);
  }
}

export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * Parses the tokens file. Blank lines and `#` comments are skipped. Errors name the line, never its content.
 * `where` names the file in messages (the configuration field).
 */
export function parseTokensFile(text: string, where = 'callers.tokens_file'): CallerEntry[] {
  const entries: CallerEntry[] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    const lineNo = index + 1;
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const name = colon >= 0 ? line.slice(0, colon).trim() : undefined;
    const token = colon >= 0 ? line.slice(colon + 1).trim() : line;
    if (name !== undefined && !CALLER_NAME.test(name)) {
      throw new ConfigError(where, `line ${lineNo}: a caller name is 1 to 64 letters, digits, "_", "." or "-" (name:token)`);
    }
    if (token.length < MIN_TOKEN_LENGTH) throw new ConfigError(where, `line ${lineNo}: the token is shorter than ${MIN_TOKEN_LENGTH} characters`);
    if (token.length > MAX_TOKEN_LENGTH) throw new ConfigError(where, `line ${lineNo}: the token is longer than ${MAX_TOKEN_LENGTH} characters`);
    if (!B64TOKEN.test(token)) {
      throw new ConfigError(where, `line ${lineNo}: a token may hold only letters, digits and - . _ ~ + / (then = padding)`);
    }
    const digest = tokenDigest(token);
    const hex = digest.toString('hex');
    const previous = seen.get(hex);
    if (previous !== undefined) throw new ConfigError(where, `line ${lineNo}: the same token as line ${previous}`);
    seen.set(hex, lineNo);
    entries.push({ name, digest });
  });
  if (entries.length === 0) throw new ConfigError(where, 'holds no token (one per line, optionally name:token)');
  return entries;
}

/** The entry whose token is `presented`, comparing digests in constant time against every entry. */
export function findCaller(presented: string, entries: readonly CallerEntry[]): CallerEntry | undefined {
  const digest = tokenDigest(presented);
  let found: CallerEntry | undefined;
  for (const entry of entries) {
    // No early exit: every entry is compared whatever matched before.
    const equal = timingSafeEqual(digest, entry.digest);
    if (equal && found === undefined) found = entry;
  }
  return found;
}

/** The token of an `Authorization: Bearer <token>` header; undefined when absent or of another shape. */
export function bearerToken(header: string | undefined): string | undefined {
  if (typeof header !== 'string' || header.length > MAX_TOKEN_LENGTH + 64) return undefined;
  return BEARER.exec(header)?.[1];
}

/** keys[].callers: throws CallerPolicyError when the key names its callers and this one is not among them. */
export function authorizeKeyUse(key: Pick<KeyConfig, 'name' | 'callers'> | undefined, caller: Caller | null | undefined): void {
  if (!key?.callers) return;
  if (caller?.name !== undefined && key.callers.includes(caller.name)) return;
  const who = caller?.name !== undefined ? `caller "${caller.name}"` : 'a caller without a name';
  throw new CallerPolicyError(`${who} may not sign with key "${key.name}" (keys[].callers)`);
}

/** `callers` from the configuration document. */
export function parseCallersConfig(raw: unknown): CallersConfig | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('callers', 'must be a mapping (callers: { tokens_file: /path })');
  const obj = raw as Record<string, unknown>;
  for (const name of Object.keys(obj)) {
    if (name !== 'tokens_file') throw new ConfigError(`callers.${name}`, 'unknown field (known here: tokens_file)');
  }
  if (typeof obj.tokens_file !== 'string' || obj.tokens_file.length === 0) {
    throw new ConfigError('callers.tokens_file', 'is required: a file with one bearer token per line (optionally name:token)');
  }
  return { tokensFile: obj.tokens_file };
}

/** keys[].callers from the configuration document: a non-empty list of caller names. */
export function parseKeyCallers(raw: unknown, field: string): string[] | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw) || raw.length === 0 || raw.some((n) => typeof n !== 'string' || !CALLER_NAME.test(n))) {
    throw new ConfigError(field, 'must be a non-empty list of caller names (the name: prefixes in callers.tokens_file)');
  }
  return raw as string[];
}

export type AuthResult =
  | { ok: true; caller: Caller }
  | { ok: false; status: 401 | 503; reason: 'missing' | 'invalid' | 'unavailable'; message: string };

/**
 * The caller tokens of a running Signet: loaded at start-up (an error stops start-up), re-read when the file
 * changes. A file that cannot be read or parsed after a change fails closed: no caller is accepted until it is
 * fixed, so a bad edit can never leave a revoked token valid.
 */
export class CallerTokens {
  readonly path: string;
  readonly #log: Logger;
  #entries: readonly CallerEntry[] = [];
  #problem: string | undefined;
  #watching = false;
  readonly #onChange = (current: Stats, previous: Stats): void => {
    if (current.mtimeMs === previous.mtimeMs && current.ino === previous.ino && current.size === previous.size) return;
    this.reload();
  };

  constructor(path: string, log: Logger) {
    this.path = path;
    this.#log = log.child({ component: 'callers' });
  }

  /** Reads the file; throws a ConfigError (naming the field and line, never a token) when it is not usable. */
  load(): void {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (error) {
      throw new ConfigError('callers.tokens_file', `cannot read ${this.path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    this.#entries = parseTokensFile(text);
    this.#problem = undefined;
    try {
      if ((statSync(this.path).mode & 0o004) !== 0) {
        this.#log.warn({ event: 'tokens_file_readable', file: this.path }, 'callers.tokens_file is readable by every local user; chmod 0600 or 0640 it');
      }
    } catch {
      // Gone again already: the next change event reloads it.
    }
  }

  /** load() for a change at run time: on failure, log (no content) and refuse every caller until it is fixed. */
  reload(): void {
    try {
      this.load();
      this.#log.info({ event: 'tokens_file_loaded', file: this.path, tokens: this.#entries.length }, 'caller tokens re-read');
    } catch (error) {
      this.#entries = [];
      this.#problem = error instanceof Error ? error.message : 'unreadable';
      this.#log.error({ event: 'tokens_file_invalid', file: this.path, err: this.#problem }, 'caller tokens file is not usable; refusing every caller until it is fixed');
    }
  }

  watch(intervalMs = 1000): void {
    if (this.#watching) return;
    this.#watching = true;
    watchFile(this.path, { interval: intervalMs, persistent: false }, this.#onChange);
  }

  close(): void {
    if (this.#watching) unwatchFile(this.path, this.#onChange);
    this.#watching = false;
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Names that appear in the file (for start-up checks of keys[].callers). */
  names(): Set<string> {
    return new Set(this.#entries.flatMap((e) => (e.name === undefined ? [] : [e.name])));
  }

  /**
   * `vaultToken` is the X-Vault-Token header, which Vault clients (the vault CLI, hvac…) send: a caller token is
   * accepted there too when no Authorization header is given. It is only compared here, never kept or logged.
   */
  authenticate(authorization: string | undefined, vaultToken?: string | string[]): AuthResult {
    if (this.#problem !== undefined) {
      return { ok: false, status: 503, reason: 'unavailable', message: "caller tokens are unavailable: callers.tokens_file is not usable; see Signet's log" };
    }
    if ((authorization === undefined || authorization === '') && typeof vaultToken === 'string' && vaultToken !== '') {
      const entry = vaultToken.length <= MAX_TOKEN_LENGTH && B64TOKEN.test(vaultToken) ? findCaller(vaultToken, this.#entries) : undefined;
      if (!entry) return { ok: false, status: 401, reason: 'invalid', message: 'caller token not accepted (X-Vault-Token; callers.tokens_file)' };
      return { ok: true, caller: { name: entry.name } };
    }
    if (authorization === undefined || authorization === '') {
      return { ok: false, status: 401, reason: 'missing', message: 'caller authentication required: send Authorization: Bearer <token> or X-Vault-Token: <token> (callers.tokens_file)' };
    }
    const token = bearerToken(authorization);
    const entry = token === undefined ? undefined : findCaller(token, this.#entries);
    if (!entry) return { ok: false, status: 401, reason: 'invalid', message: 'caller token not accepted (callers.tokens_file)' };
    return { ok: true, caller: { name: entry.name } };
  }
}
