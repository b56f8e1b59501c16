// Vault as the sidecar last saw it. A loop probes Vault's health (readiness and signet_vault_up follow it); whether
// signing can reach Vault also takes Signet's token and the circuit breaker into account, and since when it could
// not is kept, so that readiness can tolerate a short outage (readiness.vault_outage_tolerance).

import type { Logger } from 'pino';
import type { VaultAuth } from './auth.ts';
import type { VaultHealth, VaultHttp } from './http.ts';

/** Vault as the sidecar last saw it: answering (active or standby, unsealed), or not. */
export interface VaultStatus {
  health: VaultHealth;
  reachable: boolean;
  checkedAt: number;
  /** Whether signing can reach Vault now: reachable, Signet's token accepted, the circuit not open. */
  usable: boolean;
  /** Since when (ms since the epoch) Vault has not been usable; undefined while it is. */
  unusableSince?: number;
}

export interface HealthMonitorOptions {
  /** How often Vault's health is probed, ms. */
  intervalMs: number;
  /** Called after every probe: whether Vault answered unsealed (signet_vault_up). */
  onProbe?: (reachable: boolean) => void;
}

export class VaultHealthMonitor {
  readonly #http: Pick<VaultHttp, 'health' | 'breaker'>;
  readonly #auth: Pick<VaultAuth, 'status'>;
  readonly #log: Logger;
  readonly #options: HealthMonitorOptions;
  #last = { health: 'unreachable' as VaultHealth, reachable: false, checkedAt: 0 };
  // Counted from start-up: a Vault that was never usable has been unusable since Signet started.
  #unusableSince: number | undefined = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(http: Pick<VaultHttp, 'health' | 'breaker'>, auth: Pick<VaultAuth, 'status'>, log: Logger, options: HealthMonitorOptions) {
    this.#http = http;
    this.#auth = auth;
    this.#log = log;
    this.#options = options;
  }

  status(): VaultStatus {
    const reachable = this.#last.reachable && this.#http.breaker.state !== 'open';
    const usable = reachable && this.#auth.status().authenticated;
    if (usable) this.#unusableSince = undefined;
    else this.#unusableSince ??= Date.now();
    return { ...this.#last, reachable, usable, unusableSince: this.#unusableSince };
  }

  /** One probe now (start-up runs it alongside auth and the key reads). */
  async probe(): Promise<void> {
    const health = await this.#http.health(Math.min(2000, this.#options.intervalMs));
    const reachable = health === 'active' || health === 'standby';
    if (reachable !== this.#last.reachable && this.#last.checkedAt > 0) {
      this.#log[reachable ? 'info' : 'warn']({ event: 'vault_health', health }, reachable
        ? 'Vault answers again'
        : `Vault is ${health}: signing fails fast with 503; JWKS and local verification keep serving the last key state`);
    }
    this.#last = { health, reachable, checkedAt: Date.now() };
    this.#options.onProbe?.(reachable);
    // Vault is back: let the next sign through at once instead of waiting out the breaker's cooldown.
    if (reachable && this.#http.breaker.state === 'open') this.#http.breaker.success();
    this.status();
  }

  /** Probes every intervalMs from now on, until stop(). */
  start(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.probe().finally(() => this.start()), this.#options.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }
}
