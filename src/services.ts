// The parts of a running Signet, wired together once. Routes receive this object; tests can reach the parts.

import type { Logger } from 'pino';
import { Auditor } from './audit/auditor.ts';
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
  /** Whether signing can reach Vault now: reachable, Signet's token accepted, the circuit not open. */
  usable: boolean;
  /** Since when (ms since the epoch) Vault has not been usable; undefined while it is. */
  unusableSince?: number;
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
      partialInFlight: config.batching.partialInFlight,
      maxBatchSize: config.batching.maxBatchSize,
      maxQueue: config.batching.maxQueue,
      maxPendingBytes: config.batching.maxPendingBytes,
      maxWaitMs: signBudgetMs,
      ...options.batcher,
    },
    async (lane, inputs, deadline) => {
      // A try may run until the latest caller deadline in the batch; callers with earlier deadlines are answered
      // by the batcher at theirs, without aborting the call (an abort counts as Vault's silence).
      const left = () => deadline - performance.now();
      const attempt = () => transit.signBatch(lane.name, lane.version, lane.spec, inputs, Math.max(1, Math.ceil(left())));
      const token = auth.current();
      try {
        return await attempt();
      } catch (error) {
        // One more try, only inside the callers' deadline: after a dropped connection or a 5xx (a leader election).
        if (isRetryable(error) && left() > 200) {
          metrics.signRetries.inc({ reason: (error as VaultUnavailableError).reason });
          await new Promise((r) => setTimeout(r, 25 + Math.random() * 50));
          return await attempt();
        }
        if (error instanceof VaultUnavailableError && error.reason === 'refused') {
          // A 403: auth looks up the token (one lookup for every call that met it) and logs in again only if
          // Vault says it is gone. Try again with the new token; a 403 with a valid token is a policy's refusal.
          const verdict = await auth.afterRefusal(token, left() - 100);
          if (verdict === 'replaced' && left() > 50) {
            metrics.signRetries.inc({ reason: 'refused' });
            return await attempt();
          }
          if (verdict === 'valid') {
            throw new VaultUnavailableError('sign', `Vault refused to sign with key "${lane.name}" (permission denied) although Signet's token is valid: `
              + `the token's policy lacks ${config.vault.mount}/${lane.spec.operation}/${lane.name}; see vault-policy.hcl`, 5, 'refused');
          }
        }
        throw error;
      }
    },
    (key, size) => metrics.batchSize.observe({ key }, size),
  );
  const signer = new Signer(config.keys, keyring, batcher, () => refresher.refreshSince(Date.now()));
  const verifier = new Verifier(keyring, refresher, transit, config.clockSkew);
  const audit = new Auditor(config.audit, log, metrics);

  let status = { health: 'unreachable' as VaultHealth, reachable: false, checkedAt: 0 };
  // Counted from start-up: a Vault that was never usable has been unusable since Signet started.
  let unusableSince: number | undefined = Date.now();
  const vaultStatus = (): VaultStatus => {
    const reachable = status.reachable && http.breaker.state !== 'open';
    const usable = reachable && auth.status().authenticated;
    if (usable) unusableSince = undefined;
    else unusableSince ??= Date.now();
    return { ...status, reachable, usable, unusableSince };
  };
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
    vaultStatus();
  };
  const loop = () => {
    if (stopped) return;
    probeTimer = setTimeout(() => void probe().finally(loop), healthIntervalMs);
    probeTimer.unref();
  };

  return {
    config, log, metrics, control, auth, http, transit, keyring, refresher, batcher, signer, verifier, audit,
    vaultStatus,
    async start() {
      audit.open();
      // Concurrently, so that a black-holed Vault costs one timeout at start-up, not one per step. With a token
      // (no login), the token is in place before its lookup returns, so the keys need not wait for it.
      const authenticating = auth.start();
      await Promise.all([
        probe(),
        authenticating,
        config.vault.auth.method === 'token' ? refresher.start() : authenticating.then(() => refresher.start()),
      ]);
      loop();
    },
    async stop() {
      stopped = true;
      await audit.close();
      if (probeTimer) clearTimeout(probeTimer);
      refresher.stop();
      auth.stop();
      await http.close();
      control.close();
    },
  };
}
