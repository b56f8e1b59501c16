// Auto-auth (DESIGN §7), in the manner of Vault Agent: obtain a token (VAULT_TOKEN, a token file written by
// Vault Agent's sink, AppRole, Kubernetes or JWT login), renew it before it expires, and log in again when
// renewal is no longer possible. Retries use jittered exponential backoff; nothing loops hot. The token
// itself is never logged.

import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { Logger } from 'pino';
import type { AuthConfig } from './config.ts';
import { AuthError, AuthFileError, LoginAnswerError, VaultResponseError, VaultUnavailableError } from '../errors.ts';
import type { VaultControl } from './control.ts';
import type { TokenSource } from './http.ts';

export interface AuthStatus {
  authenticated: boolean;
  /** Seconds the token has left, at the last lookup or renewal; Infinity for a token that never expires. */
  ttlSeconds?: number;
  method: string;
}

export interface AuthEvents {
  onLogin?: (method: string) => void;
  onFailure?: (method: string, reason: string) => void;
}

/** Jittered exponential backoff: base·2^attempt, capped, then scaled by a random factor in [0.5, 1). */
export function backoffMs(attempt: number, baseMs = 500, capMs = 30_000, random = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling * (0.5 + random() / 2));
}

function readSecretFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw new AuthFileError(`cannot read the ${what} file ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!text) throw new AuthFileError(`the ${what} file ${path} is empty`);
  return text;
}

/**
 * What a 403 meant, once auth has looked: `replaced` (the token was gone and a new one is in use: try again),
 * `valid` (the token is fine: a policy refused that one path), `failed` (no working token now).
 */
export type RefusalVerdict = 'replaced' | 'valid' | 'failed';

/** How long a "the token is valid" answer stands before another 403 makes auth look again, ms. */
const VALID_VERDICT_MS = 500;

/**
 * The token's life as one state machine with at most one Vault call of its own in flight at a time (a login or
 * lookup, a renewal, or the check that follows a 403), shared by every caller:
 * - a 403 first checks the token (lookup-self) and logs in only when Vault says it is gone; a 403 for a token
 *   already replaced, or one during a login or check, joins what is under way instead of starting another;
 * - one timer holds the next step (renewal, or a retry after backoff); a login supersedes it and sets the next;
 * - `authenticated` is false from the moment Vault says the token is gone (or its TTL ran out) until a new one works.
 */
export class VaultAuth implements TokenSource {
  readonly #config: AuthConfig;
  readonly #control: VaultControl;
  readonly #log: Logger;
  readonly #events: AuthEvents;
  #token = '';
  #generation = 0;
  #authenticated = false;
  #ttlSeconds: number | undefined;
  #ttlAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #stopped = false;
  #login: Promise<void> | undefined;
  #loginAgain = false;
  #check: Promise<RefusalVerdict> | undefined;
  #renewing = false;
  /** The last check's verdict for a generation, so a burst of 403s costs one lookup. */
  #verdict: { generation: number; verdict: RefusalVerdict; at: number } | undefined;

  constructor(config: AuthConfig, control: VaultControl, log: Logger, events: AuthEvents = {}) {
    this.#config = config;
    this.#control = control;
    this.#log = log.child({ component: 'vault-auth', method: config.method });
    this.#events = events;
    // A 403 on a control-plane call (key read, lookup) is news about the token too.
    control.onRefused = (token) => this.rejected(token);
  }

  current(): string {
    return this.#token;
  }

  status(): AuthStatus {
    const left = this.#ttlSeconds === undefined ? undefined
      : this.#ttlSeconds === Infinity ? Infinity
        : Math.max(0, this.#ttlSeconds - (Date.now() - this.#ttlAt) / 1000);
    return { authenticated: this.#authenticated && left !== 0, ttlSeconds: left, method: this.#config.method };
  }

  /** Whether this method can obtain a new token by itself (a login method, or a token file that may change). */
  get canReauthenticate(): boolean {
    return this.#config.method !== 'token' || this.#config.tokenFile !== undefined;
  }

  /** Changes whenever the token does: a call made under an older generation used a token already replaced. */
  get generation(): number {
    return this.#generation;
  }

  /** Vault answered 403 to a call made with `token`: find out why (and log in again if the token is gone). */
  rejected(token: string): void {
    void this.#checkToken(token);
  }

  /** After a 403 to a call made with `token`: what it meant, within `timeoutMs` ('failed' if not known by then). */
  async afterRefusal(token: string, timeoutMs: number): Promise<RefusalVerdict> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<RefusalVerdict>((resolve) => {
      timer = setTimeout(() => resolve('failed'), Math.max(0, timeoutMs));
    });
    try {
      return await Promise.race([this.#checkToken(token), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** First authentication. Resolves either way: on failure, retries continue in the background. */
  async start(): Promise<void> {
    if (this.#config.method === 'token' && this.#config.tokenFile) {
      // Vault Agent rewrites its sink file when it renews or re-authenticates; pick the new token up.
      watchFile(this.#config.tokenFile, { interval: 1000, persistent: false }, () => {
        this.#log.info({ event: 'token_file_changed' }, 'token file changed; re-reading it');
        // A change during a read must be read again after it: the read may have seen the old content.
        if (this.#login) this.#loginAgain = true;
        else void this.#authenticate();
      });
    }
    await this.#authenticate();
  }

  stop(): void {
    this.#stopped = true;
    this.#clearTimer();
    if (this.#config.method === 'token' && this.#config.tokenFile) unwatchFile(this.#config.tokenFile);
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(delayMs: number, step: () => Promise<unknown>): void {
    if (this.#stopped) return;
    this.#clearTimer();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void step();
    }, delayMs);
    this.#timer.unref();
  }

  #setToken(token: string): void {
    if (token !== this.#token) this.#generation++;
    this.#token = token;
    this.#control.setToken(token);
  }

  #checkToken(token: string): Promise<RefusalVerdict> {
    if (this.#stopped) return Promise.resolve('failed');
    if (token !== this.#token) return Promise.resolve('replaced');
    // A login is under way: it decides.
    if (this.#login) return this.#login.then(() => this.#verdictAfterLogin(token));
    if (this.#check) return this.#check;
    const generation = this.#generation;
    const last = this.#verdict?.generation === generation ? this.#verdict : undefined;
    if (last?.verdict === 'valid' && Date.now() - last.at < VALID_VERDICT_MS) return Promise.resolve('valid');
    // Known gone, and a retry is already scheduled with backoff: do not hammer Vault with lookups.
    if (last?.verdict === 'failed' && this.#timer) return Promise.resolve('failed');
    this.#check = this.#lookupAfterRefusal(token, generation).finally(() => {
      this.#check = undefined;
    });
    return this.#check;
  }

  /** After a login that a 403 waited for: a new working token, the same one still working, or none. */
  #verdictAfterLogin(token: string): RefusalVerdict {
    if (!this.status().authenticated) return 'failed';
    return this.#token === token ? 'valid' : 'replaced';
  }

  async #lookupAfterRefusal(token: string, generation: number): Promise<RefusalVerdict> {
    const record = (verdict: RefusalVerdict): RefusalVerdict => {
      this.#verdict = { generation, verdict, at: Date.now() };
      return verdict;
    };
    try {
      await this.#control.read('token_lookup', 'auth/token/lookup-self');
      if (this.#generation !== generation) return 'replaced';
      this.#log.warn({ event: 'permission_denied' }, 'Vault refused a call with 403 although Signet\'s token is valid: its policy lacks that path (see vault-policy.hcl)');
      return record('valid');
    } catch (error) {
      if (this.#generation !== generation) return 'replaced';
      if (!(error instanceof VaultUnavailableError && error.reason === 'refused')) {
        // Vault did not answer the lookup: nothing is known about the token; the sign path's own errors decide.
        return 'failed';
      }
      this.#authenticated = false;
      this.#log.warn({ event: 'token_rejected' }, this.canReauthenticate
        ? 'Vault no longer accepts Signet\'s token (revoked or expired); logging in again'
        : 'Vault no longer accepts Signet\'s token (revoked or expired) and the token method cannot get a new one: give Signet a new token (token_file) and restart');
      this.#events.onFailure?.(this.#config.method, 'refused');
      if (!this.canReauthenticate) {
        record('failed');
        this.#retryLater(() => this.#authenticate());
        return 'failed';
      }
      await this.#authenticate();
      return record(this.#token !== token && this.status().authenticated ? 'replaced' : 'failed');
    }
  }

  /** Gets a token (from the environment, a file or a login) and looks it up. One at a time; callers share it. */
  #authenticate(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#login) return this.#login;
    // The next step is decided when this one ends (renewal on success, a retry with backoff on failure).
    this.#clearTimer();
    this.#login = this.#obtainToken().finally(() => {
      this.#login = undefined;
      if (this.#loginAgain) {
        this.#loginAgain = false;
        void this.#authenticate();
      }
    });
    return this.#login;
  }

  async #obtainToken(): Promise<void> {
    try {
      const config = this.#config;
      let ttl: number;
      let renewable: boolean;
      if (config.method === 'token') {
        this.#setToken(config.tokenFile ? readSecretFile(config.tokenFile, 'Vault token') : config.token ?? '');
        const info = await this.#control.read('token_lookup', 'auth/token/lookup-self');
        ttl = Number(info.data?.ttl ?? 0);
        renewable = info.data?.renewable === true;
      } else {
        const body = config.method === 'approle'
          ? {
              role_id: config.roleId ?? readSecretFile(config.roleIdFile!, 'AppRole role_id'),
              ...(config.secretIdFile ? { secret_id: readSecretFile(config.secretIdFile, 'AppRole secret_id') } : {}),
            }
          : { role: config.role, jwt: readSecretFile(config.tokenFile, `${config.method} JWT`) };
        const answer = await this.#control.login('login', `auth/${config.mount}/login`, body);
        const auth = answer.auth as { client_token?: unknown; lease_duration?: unknown; renewable?: unknown } | undefined;
        if (typeof auth?.client_token !== 'string') throw new LoginAnswerError('Vault login answered without a client_token');
        this.#setToken(auth.client_token);
        ttl = Number(auth.lease_duration ?? 0);
        renewable = auth.renewable === true;
        this.#events.onLogin?.(config.method);
      }
      this.#onToken(ttl, renewable);
      this.#log.info({ event: 'authenticated', ttl_seconds: ttl === 0 ? 'none' : ttl, renewable }, 'authenticated to Vault');
    } catch (error) {
      this.#fail(error, () => this.#authenticate());
    }
  }

  #onToken(ttl: number, renewable: boolean): void {
    this.#authenticated = true;
    this.#verdict = undefined;
    this.#attempt = 0;
    this.#ttlSeconds = ttl === 0 ? Infinity : ttl;
    this.#ttlAt = Date.now();
    if (ttl > 0) {
      // Renew at two thirds of the TTL, leaving a third for retries if Vault is briefly away.
      const delay = Math.max(1000, (ttl * 1000 * 2) / 3);
      if (renewable) this.#schedule(delay, () => this.#renew(ttl));
      else this.#schedule(delay, () => this.#authenticate());
    }
  }

  async #renew(previousTtl: number): Promise<void> {
    if (this.#login || this.#renewing || this.#stopped) return;
    this.#renewing = true;
    const generation = this.#generation;
    const token = this.#token;
    try {
      const answer = await this.#control.write('token_renew', 'auth/token/renew-self', {});
      // A login that finished meanwhile owns the token (and the timer) now.
      if (this.#generation !== generation || this.#login) return;
      const auth = answer.auth as { lease_duration?: unknown; renewable?: unknown } | undefined;
      const ttl = Number(auth?.lease_duration ?? 0);
      this.#log.info({ event: 'renewed', ttl_seconds: ttl }, 'renewed the Vault token');
      if (ttl < previousTtl / 2 && this.#config.method !== 'token') {
        // The token is near its max TTL: renewal no longer extends it, so log in again now, while it still works.
        this.#log.info({ event: 'max_ttl', ttl_seconds: ttl }, 'the Vault token is near its max TTL; logging in again');
        this.#onToken(ttl, false);
        void this.#authenticate();
        return;
      }
      this.#onToken(ttl, auth?.renewable === true);
    } catch (error) {
      if (this.#generation !== generation || this.#login) return;
      // Refused: the check that this 403 started decides. Unreachable: renew again after backoff while the token
      // may still live, else log in (or read the token) again.
      if (error instanceof VaultUnavailableError && error.reason === 'refused') {
        this.#events.onFailure?.(this.#config.method, 'refused');
        // A token that still works but cannot be renewed (OpenBao's Kubernetes auth reviews the login's JWT again
        // on every renewal, and refuses once that JWT expired; a policy without renew-self) would lapse at its TTL
        // with nothing scheduled: log in again now, while it works.
        const verdict = await this.#checkToken(token);
        if (verdict !== 'valid' || this.#generation !== generation || this.#login || this.#stopped) return;
        const left = Math.round(this.status().ttlSeconds ?? 0);
        if (this.canReauthenticate) {
          this.#log.warn({ event: 'renewal_refused', ttl_seconds: left }, 'Vault refused to renew Signet\'s token, which still works: logging in again before it expires');
          void this.#authenticate();
        } else {
          this.#log.warn({ event: 'renewal_refused', ttl_seconds: left }, 'Vault refused to renew Signet\'s token, which still works: it expires at the end of its TTL; give Signet a renewable token (or a token_file)');
        }
        return;
      }
      this.#fail(error, () => (this.status().ttlSeconds === 0 ? this.#authenticate() : this.#renew(previousTtl)));
    } finally {
      this.#renewing = false;
    }
  }

  #retryLater(step: () => Promise<unknown>): number {
    const delay = backoffMs(this.#attempt++);
    this.#schedule(delay, step);
    return delay;
  }

  #fail(error: unknown, retry: () => Promise<unknown>): void {
    const reason = error instanceof Error ? error.message : 'unknown error';
    // Refused: Vault would not take the token (403) or the login's credentials (400, e.g. a wrong secret_id).
    const refused = (error instanceof VaultUnavailableError && error.reason === 'refused')
      || (error instanceof VaultResponseError && error.vaultStatus === 400)
      || error instanceof AuthError;
    if (refused) this.#authenticated = false;
    this.#events.onFailure?.(this.#config.method, refused ? 'refused' : 'unreachable');
    const delay = this.#retryLater(retry);
    this.#log.warn({ event: 'auth_failed', retry_in_ms: delay, err: reason }, 'Vault authentication failed; retrying');
  }
}
