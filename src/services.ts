// The parts of a running Signet, wired together once. Routes receive this object; tests can reach the parts.

import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { Keyring } from './keys/keyring.ts';
import { logLegacyChange } from './keys/legacy-log.ts';
import { loadStaticKeys } from './keys/static-keys.ts';
import { KeyRefresher } from './keys/refresher.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { DEFAULT_BATCHER, SignBatcher, type BatcherOptions } from './signer/batcher.ts';
import { Signer } from './signer/signer.ts';
import { Verifier } from './verifier/verifier.ts';
import { VaultAuth } from './vault/auth.ts';
import { VaultControl } from './vault/control.ts';
import type { BreakerOptions } from './vault/breaker.ts';
import { isRetryable, VaultHttp, type VaultHealth } from './vault/http.ts';
import { VaultUnavailableError } from './errors.ts';
import { Transit } from './vault/transit.ts';

export interface ServiceOptions {
  batcher?: Partial<BatcherOptions>;
  breaker?: BreakerOptions;
  /** How often Vault's health is probed, ms (readiness follows it). */
  healthIntervalMs?: number;
}

/** Vault as the sidecar last saw it: answering (active or standby, unsealed), or not. */
export interface VaultStatus {
  health: VaultHealth;
  reachable: boolean;
  checkedAt: number;
}

export interface Services {
  config: Config;
  log: Logger;
  metrics: Metrics;
  control: VaultControl;
  auth: VaultAuth;
  http: VaultHttp;
  transit: Transit;
  keyring: Keyring;
  refresher: KeyRefresher;
  batcher: SignBatcher;
  signer: Signer;
  verifier: Verifier;
  vaultStatus(): VaultStatus;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createServices(config: Config, log: Logger, options: ServiceOptions = {}): Services {
  const metrics = createMetrics();
  const observeVault = (operation: string, seconds: number, outcome: 'ok' | 'error' | 'unreachable'): void => {
    metrics.vaultRequests.inc({ operation, outcome });
    metrics.vaultDuration.observe({ operation }, seconds);
  };
  const vaultLog = log.child({ component: 'vault' });
  const control = new VaultControl(config.vault, { observe: observeVault });
  const auth = new VaultAuth(config.vault.auth, control, log, {
    onFailure: (_method, reason) => metrics.authFailures.inc({ reason }),
  });
  const http = new VaultHttp(config.vault, auth, {
    observe: observeVault,
    connections: 64,
    breaker: options.breaker,
    onCircuit: (state) => {
      metrics.circuitState.set(state === 'closed' ? 0 : state === 'half-open' ? 1 : 2);
      if (state !== 'half-open') vaultLog.warn({ event: 'circuit', state }, state === 'open'
        ? 'Vault failed repeatedly: sign requests fail fast (503) until it answers again'
        : 'Vault answers again: signing resumed');
    },
  });
  const transit = new Transit(http, config.vault.mount);
  const keyLog = log.child({ component: 'keys' });
  const keyring = new Keyring({ clockSkew: config.clockSkew, refreshInterval: config.refreshInterval }, (change) => {
    keyLog.info({ event: 'version_state', ...change }, `key ${change.key} version ${change.version}: ${change.from} → ${change.to}`);
  }, (change) => logLegacyChange(keyLog, change));
  keyring.setStaticKeys(loadStaticKeys(config.staticKeys));
  const refresher = new KeyRefresher(config, control, keyring, log, (key, outcome) => metrics.keyRefresh.inc({ key, outcome }));
  const signBudgetMs = config.vault.signTimeout * 1000;
  const batcher = new SignBatcher(
    {
      ...DEFAULT_BATCHER,
      enabled: config.batching.enabled,
      maxInFlight: config.batching.maxInFlight,
      maxBatchSize: config.batching.maxBatchSize,
      maxQueue: config.batching.maxQueue,
      maxWaitMs: signBudgetMs,
      ...options.batcher,
    },
    async (lane, inputs, deadline) => {
      const generation = auth.generation;
      // Each try is bounded by what is left of the earliest caller deadline in the batch (queueing included).
      const attempt = () => transit.signBatch(lane.name, lane.version, lane.spec, inputs,
        AbortSignal.timeout(Math.max(1, Math.ceil(deadline - performance.now()))));
      const left = () => deadline - performance.now();
      try {
        return await attempt();
      } catch (error) {
        // One more try, only inside the callers' deadline: after a dropped connection or a 5xx (a leader
        // election), or after a 403 once auth has a new token (revoked or expired token, re-login).
        if (isRetryable(error) && left() > 200) {
          metrics.signRetries.inc({ reason: (error as VaultUnavailableError).reason });
          await new Promise((r) => setTimeout(r, 25 + Math.random() * 50));
          return await attempt();
        }
        // A 403 for a token that has meanwhile been replaced (the re-login finished while this call was out)
        // is retried at once; otherwise wait for the re-login this 403 triggers.
        if (error instanceof VaultUnavailableError && error.reason === 'refused' && auth.canReauthenticate && left() > 200
          && (auth.generation !== generation || await auth.whenAuthenticated(left() - 100))) {
          metrics.signRetries.inc({ reason: 'refused' });
          return await attempt();
        }
        throw error;
      }
    },
    (key, size) => metrics.batchSize.observe({ key }, size),
  );
  const signer = new Signer(config.keys, keyring, batcher, () => refresher.refresh());
  const verifier = new Verifier(keyring, refresher, transit, config.clockSkew);

  let status: VaultStatus = { health: 'unreachable', reachable: false, checkedAt: 0 };
  let probeTimer: NodeJS.Timeout | undefined;
  let stopped = false;
  const healthIntervalMs = options.healthIntervalMs ?? Math.min(5000, config.refreshInterval * 1000);
  const probe = async () => {
    const health = await http.health(Math.min(2000, healthIntervalMs));
    const reachable = health === 'active' || health === 'standby';
    if (reachable !== status.reachable && status.checkedAt > 0) {
      vaultLog[reachable ? 'info' : 'warn']({ event: 'vault_health', health }, reachable
        ? 'Vault answers again'
        : `Vault is ${health}: signing fails fast with 503; JWKS and local verification keep serving the last key state`);
    }
    status = { health, reachable, checkedAt: Date.now() };
    metrics.vaultUp.set(reachable ? 1 : 0);
    // Vault is back: let the next sign through at once instead of waiting out the breaker's cooldown.
    if (reachable && http.breaker.state === 'open') http.breaker.success();
  };
  const loop = () => {
    if (stopped) return;
    probeTimer = setTimeout(() => void probe().finally(loop), healthIntervalMs);
    probeTimer.unref();
  };

  return {
    config, log, metrics, control, auth, http, transit, keyring, refresher, batcher, signer, verifier,
    vaultStatus: () => ({ ...status, reachable: status.reachable && http.breaker.state !== 'open' }),
    async start() {
      await probe();
      loop();
      await auth.start();
      await refresher.start();
    },
    async stop() {
      stopped = true;
      if (probeTimer) clearTimeout(probeTimer);
      refresher.stop();
      auth.stop();
      await http.close();
      control.close();
    },
  };
}
