// Auto-auth (DESIGN §7), in the manner of Vault Agent: obtain a token (VAULT_TOKEN, a token file written by
// Vault Agent's sink, AppRole, Kubernetes or JWT login), renew it before it expires, and log in again when
// renewal is no longer possible. Retries use jittered exponential backoff; nothing loops hot. The token
// itself is never logged.

import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { Logger } from 'pino';
import type { AuthConfig } from '../config.ts';
import { SignetError, VaultResponseError, VaultUnavailableError } from '../errors.ts';
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
    throw new SignetError(503, 'auth', `cannot read the ${what} file ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!text) throw new SignetError(503, 'auth', `the ${what} file ${path} is empty`);
  return text;
}

export class VaultAuth implements TokenSource {
  readonly #config: AuthConfig;
  readonly #control: VaultControl;
  readonly #log: Logger;
  readonly #events: AuthEvents;
  #token = '';
  #authenticated = false;
  #ttlSeconds: number | undefined;
  #ttlAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #stopped = false;
  #reauthPending = false;
  #waiters: Array<(ok: boolean) => void> = [];
  #generation = 0;

  constructor(config: AuthConfig, control: VaultControl, log: Logger, events: AuthEvents = {}) {
    this.#config = config;
    this.#control = control;
    this.#log = log.child({ component: 'vault-auth', method: config.method });
    this.#events = events;
  }

  current(): string {
    return this.#token;
  }

  status(): AuthStatus {
    const left = this.#ttlSeconds === undefined ? undefined
      : this.#ttlSeconds === Infinity ? Infinity
        : Math.max(0, this.#ttlSeconds - (Date.now() - this.#ttlAt) / 1000);
    return { authenticated: this.#authenticated, ttlSeconds: left, method: this.#config.method };
  }

  /** Whether this method can obtain a new token by itself (a login method, or a token file that may change). */
  get canReauthenticate(): boolean {
    return this.#config.method !== 'token' || this.#config.tokenFile !== undefined;
  }

  /** Resolves true at the next successful authentication, false if none happens within `timeoutMs`. */
  whenAuthenticated(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== settle);
        resolve(false);
      }, timeoutMs);
      const settle = (ok: boolean) => {
        clearTimeout(timer);
        resolve(ok);
      };
      this.#waiters.push(settle);
    });
  }

  /** Vault answered 403 to a call made with the current token: check it (and log in again) soon. */
  rejected(token: string): void {
    // Calls still in flight with an older token answer 403 after a new login: they must not start another.
    if (this.#stopped || this.#reauthPending || token !== this.#token) return;
    this.#reauthPending = true;
    this.#authenticated = false;
    this.#schedule(0, 'Vault refused the token');
  }

  /** First authentication. Resolves either way: on failure, retries continue in the background. */
  async start(): Promise<void> {
    if (this.#config.method === 'token' && this.#config.tokenFile) {
      // Vault Agent rewrites its sink file when it renews or re-authenticates; pick the new token up.
      watchFile(this.#config.tokenFile, { interval: 1000, persistent: false }, () => {
        this.#log.info({ event: 'token_file_changed' }, 'token file changed; re-reading it');
        this.#schedule(0, 'token file changed');
      });
    }
    await this.#authenticate();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#config.method === 'token' && this.#config.tokenFile) unwatchFile(this.#config.tokenFile);
  }

  #schedule(delayMs: number, reason: string): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#log.debug({ reason }, 'running auth step');
      void this.#authenticate();
    }, delayMs);
    this.#timer.unref();
  }

  #setToken(token: string): void {
    if (token !== this.#token) this.#generation++;
    this.#token = token;
    this.#control.setToken(token);
  }

  /** Changes whenever the token does: a call made under an older generation used a token already replaced. */
  get generation(): number {
    return this.#generation;
  }

  /** Gets a token (from the environment, a file or a login) and looks it up; on failure, retries with backoff. */
  async #authenticate(): Promise<void> {
    this.#reauthPending = false;
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
        if (typeof auth?.client_token !== 'string') throw new SignetError(503, 'auth', 'Vault login answered without a client_token');
        this.#setToken(auth.client_token);
        ttl = Number(auth.lease_duration ?? 0);
        renewable = auth.renewable === true;
        this.#events.onLogin?.(config.method);
      }
      this.#onToken(ttl, renewable);
      this.#log.info({ event: 'authenticated', ttl_seconds: ttl === 0 ? 'none' : ttl, renewable }, 'authenticated to Vault');
    } catch (error) {
      this.#fail(error);
    }
  }

  #onToken(ttl: number, renewable: boolean): void {
    this.#authenticated = true;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve(true);
    this.#attempt = 0;
    this.#ttlSeconds = ttl === 0 ? Infinity : ttl;
    this.#ttlAt = Date.now();
    if (ttl > 0) {
      // Renew at two thirds of the TTL, leaving a third for retries if Vault is briefly away.
      const delay = Math.max(1000, (ttl * 1000 * 2) / 3);
      if (renewable) this.#scheduleRenewal(delay, ttl);
      else this.#schedule(delay, 'token is not renewable; logging in again before it expires');
    }
  }

  #scheduleRenewal(delayMs: number, previousTtl: number): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#renew(previousTtl), delayMs);
    this.#timer.unref();
  }

  async #renew(previousTtl: number): Promise<void> {
    try {
      const answer = await this.#control.write('token_renew', 'auth/token/renew-self', {});
      const auth = answer.auth as { lease_duration?: unknown; renewable?: unknown } | undefined;
      const ttl = Number(auth?.lease_duration ?? 0);
      this.#log.info({ event: 'renewed', ttl_seconds: ttl }, 'renewed the Vault token');
      if (ttl < previousTtl / 2 && this.#config.method !== 'token') {
        // The token is near its max TTL: renewal no longer extends it, so log in again now, while it still works.
        this.#log.info({ event: 'max_ttl', ttl_seconds: ttl }, 'the Vault token is near its max TTL; logging in again');
        await this.#authenticate();
        return;
      }
      this.#onToken(ttl, auth?.renewable === true);
    } catch (error) {
      this.#fail(error);
    }
  }

  #fail(error: unknown): void {
    const reason = error instanceof Error ? error.message : 'unknown error';
    // Refused: Vault would not take the token (403) or the login's credentials (400, e.g. a wrong secret_id).
    const refused = (error instanceof VaultUnavailableError && error.reason === 'refused')
      || (error instanceof VaultResponseError && error.vaultStatus === 400);
    if (refused) this.#authenticated = false;
    const expired = this.#ttlSeconds !== undefined && this.status().ttlSeconds === 0;
    if (expired) this.#authenticated = false;
    this.#events.onFailure?.(this.#config.method, refused ? 'refused' : 'unreachable');
    const delay = backoffMs(this.#attempt++);
    this.#log.warn({ event: 'auth_failed', retry_in_ms: delay, err: reason }, 'Vault authentication failed; retrying');
    this.#schedule(delay, 'retry after failure');
  }
}
