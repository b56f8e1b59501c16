// The parts of a running Signet, wired together once (the sign retry policy is in signer/retry.ts, the Vault health
// loop in vault/health-monitor.ts). Routes receive this object; tests can reach the parts.

import type { Logger } from 'pino';
import { Auditor } from './audit/auditor.ts';
import type { Config } from './config.ts';
import { Keyring } from './keys/keyring.ts';
import { logLegacyChange } from './keys/legacy-log.ts';
import { loadStaticKeys } from './keys/static-keys.ts';
import { KeyRefresher } from './keys/refresher.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { DEFAULT_BATCHER, SignBatcher, type BatcherOptions } from './signer/batcher.ts';
import { retryingSend } from './signer/retry.ts';
import { Signer } from './signer/signer.ts';
import { Verifier } from './verifier/verifier.ts';
import { VaultAuth } from './vault/auth.ts';
import { VaultControl } from './vault/control.ts';
import type { BreakerOptions } from './vault/breaker.ts';
import { VaultHealthMonitor, type VaultStatus } from './vault/health-monitor.ts';
import { VaultHttp } from './vault/http.ts';
import { Transit } from './vault/transit.ts';

export interface ServiceOptions {
  batcher?: Partial<BatcherOptions>;
  breaker?: BreakerOptions;
  /** How often Vault's health is probed, ms (readiness follows it). */
  healthIntervalMs?: number;
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
  /** The audit trail: every sign path calls audit.signDecision() once per decision and awaits it. */
  audit: Auditor;
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
  }, (key, message) => {
    keyLog.error({ event: 'key_state_invalid', key, err: message }, 'cannot evaluate the key state read from Vault; keeping the last good state of this key');
  }, (change) => logLegacyChange(keyLog, change));
  keyring.setStaticKeys(loadStaticKeys(config.staticKeys));
  const refresher = new KeyRefresher(config, control, keyring, log, (key, outcome) => metrics.keyRefresh.inc({ key, outcome }));
  const signBudgetMs = config.vault.signTimeout * 1000;
  const batcher = new SignBatcher(
    {
      ...DEFAULT_BATCHER,
      enabled: config.batching.enabled,
      maxInFlight: config.batching.maxInFlight,
      minInFlight: config.batching.minInFlight,
      partialInFlight: config.batching.partialInFlight,
      loneBatchCalls: config.batching.loneBatchCalls,
      maxBatchSize: config.batching.maxBatchSize,
      maxQueue: config.batching.maxQueue,
      maxPendingBytes: config.batching.maxPendingBytes,
      maxWaitMs: signBudgetMs,
      ...options.batcher,
    },
    retryingSend({ transit, auth, mount: config.vault.mount, onRetry: (reason) => metrics.signRetries.inc({ reason }) }),
    (key, size) => metrics.batchSize.observe({ key }, size),
  );
  const signer = new Signer(config.keys, keyring, batcher, () => refresher.refreshSince(Date.now()));
  const verifier = new Verifier(keyring, refresher, transit, config.clockSkew);
  const audit = new Auditor(config.audit, log, metrics);

  const health = new VaultHealthMonitor(http, auth, vaultLog, {
    intervalMs: options.healthIntervalMs ?? Math.min(5000, config.refreshInterval * 1000),
    onProbe: (reachable) => metrics.vaultUp.set(reachable ? 1 : 0),
  });

  return {
    config, log, metrics, control, auth, http, transit, keyring, refresher, batcher, signer, verifier, audit,
    vaultStatus: () => health.status(),
    async start() {
      audit.open();
      // Concurrently, so that a black-holed Vault costs one timeout at start-up, not one per step. With a token
      // (no login), the token is in place before its lookup returns, so the keys need not wait for it.
      const authenticating = auth.start();
      await Promise.all([
        health.probe(),
        authenticating,
        config.vault.auth.method === 'token' ? refresher.start() : authenticating.then(() => refresher.start()),
      ]);
      health.start();
    },
    async stop() {
      health.stop();
      await audit.close();
      refresher.stop();
      auth.stop();
      await http.close();
      control.close();
    },
  };
}
