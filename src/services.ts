// The parts of a running Signet, wired together once. Routes receive this object; tests can reach the parts.

import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { Keyring } from './keys/keyring.ts';
import { KeyRefresher } from './keys/refresher.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { DEFAULT_BATCHER, SignBatcher, type BatcherOptions } from './signer/batcher.ts';
import { Signer } from './signer/signer.ts';
import { Verifier } from './verifier/verifier.ts';
import { VaultAuth } from './vault/auth.ts';
import { VaultControl } from './vault/control.ts';
import { VaultHttp } from './vault/http.ts';
import { Transit } from './vault/transit.ts';

export interface ServiceOptions {
  batcher?: Partial<BatcherOptions>;
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
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createServices(config: Config, log: Logger, options: ServiceOptions = {}): Services {
  const metrics = createMetrics();
  const observeVault = (operation: string, seconds: number, outcome: 'ok' | 'error' | 'unreachable'): void => {
    metrics.vaultRequests.inc({ operation, outcome });
    metrics.vaultDuration.observe({ operation }, seconds);
    metrics.vaultUp.set(outcome === 'unreachable' ? 0 : 1);
  };
  const control = new VaultControl(config.vault, { observe: observeVault });
  const auth = new VaultAuth(config.vault.auth, control, log, {
    onFailure: (_method, reason) => metrics.authFailures.inc({ reason }),
  });
  const http = new VaultHttp(config.vault, auth, { observe: observeVault, connections: 64 });
  const transit = new Transit(http, config.vault.mount);
  const keyLog = log.child({ component: 'keys' });
  const keyring = new Keyring({ clockSkew: config.clockSkew, refreshInterval: config.refreshInterval }, (change) => {
    keyLog.info({ event: 'version_state', ...change }, `key ${change.key} version ${change.version}: ${change.from} → ${change.to}`);
  });
  const refresher = new KeyRefresher(config, control, keyring, log, (key, outcome) => metrics.keyRefresh.inc({ key, outcome }));
  const batcher = new SignBatcher(
    { ...DEFAULT_BATCHER, ...options.batcher },
    (lane, inputs) => transit.signBatch(lane.name, lane.version, lane.spec, inputs),
    (key, size) => metrics.batchSize.observe({ key }, size),
  );
  const signer = new Signer(keyring, batcher);
  const verifier = new Verifier(keyring, refresher, transit, config.clockSkew);

  return {
    config, log, metrics, control, auth, http, transit, keyring, refresher, batcher, signer, verifier,
    async start() {
      await auth.start();
      await refresher.start();
    },
    async stop() {
      refresher.stop();
      auth.stop();
      await http.close();
      control.close();
    },
  };
}
