// Signet as kube-apiserver's external service-account token signer: the ExternalJWTSigner gRPC service (package
// v1, and v1alpha1 for older clusters) on one unix socket per configured cluster. Sign goes through Signet's
// signer (active version, batcher, circuit breaker) and every signature is checked against the version's public
// key before it is answered: kube-apiserver does not check it, and a bad one would surface only as a pod that
// cannot authenticate. FetchKeys and Metadata answer from the keyring, so they keep working while Vault is away.

import { randomUUID } from 'node:crypto';
import { chmodSync, chownSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Server, ServerCredentials, status, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import type { Logger } from 'pino';
import { KUBERNETES_ALGS, type KubernetesClusterConfig } from './config.ts';
import { ConfigError, SignetError, VaultUnavailableError } from '../errors.ts';
import { verifySignature } from '../jwt/signature.ts';
import type { KeyView } from '../keys/keyring.ts';
import { clearStaleSocket, resolveGroup } from '../security/socket.ts';
import type { Services } from '../services.ts';
import { checkClaims, KeySetClock, MAX_CLAIMS_LENGTH, publishedKeys, refreshHint, staticPublishedKeys, timestamp } from './contract.ts';

const PROTO = join(import.meta.dirname, 'externaljwt.proto');

/** The v1 service definition, and the same service under v1alpha1 (identical messages, other paths). */
export function serviceDefinitions(): ServiceDefinition[] {
  const definition = loadSync(PROTO, { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true });
  const v1 = definition['v1.ExternalJWTSigner'] as ServiceDefinition;
  const v1alpha1 = Object.fromEntries(Object.entries(v1).map(([method, d]) => [
    method, { ...d, path: d.path.replace(/^\/v1\./, '/v1alpha1.') },
  ])) as ServiceDefinition;
  return [v1, v1alpha1];
}

/** The claims of a refused Sign for its audit record (the record keeps their names only), when they decode. */
function claimsForAudit(claims: unknown): unknown {
  if (typeof claims !== 'string' || claims.length > MAX_CLAIMS_LENGTH) return undefined;
  try {
    return JSON.parse(Buffer.from(claims, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

/** A gRPC error: status code and a message that names what failed (never a claim value). */
class RpcError extends Error {
  readonly code: status;
  constructor(code: status, message: string) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
  }
}

/** The gRPC status of an error on the sign path. */
export function grpcStatusOf(error: unknown): status {
  if (error instanceof RpcError) return error.code;
  if (error instanceof VaultUnavailableError) return error.reason === 'overloaded' ? status.RESOURCE_EXHAUSTED : status.UNAVAILABLE;
  if (error instanceof SignetError) {
    if (error.status === 400) return status.INVALID_ARGUMENT;
    if (error.status === 503) return status.UNAVAILABLE;
  }
  return status.INTERNAL;
}

const OUTCOME: Partial<Record<status, string>> = {
  [status.OK]: 'ok',
  [status.INVALID_ARGUMENT]: 'invalid_argument',
  [status.UNAVAILABLE]: 'unavailable',
  [status.RESOURCE_EXHAUSTED]: 'resource_exhausted',
  [status.FAILED_PRECONDITION]: 'failed_precondition',
  [status.INTERNAL]: 'internal',
};

export interface KubernetesSigner {
  cluster: KubernetesClusterConfig;
  socket: string;
  close(): Promise<void>;
}

/** Starts the ExternalJWTSigner for one cluster; the services must be started (keys loaded, or being loaded). */
export async function startKubernetesSigner(services: Services, cluster: KubernetesClusterConfig, index: number): Promise<KubernetesSigner> {
  const { signer, keyring, metrics, config, audit } = services;
  // The audit trail names kube-apiserver as the caller: "kubernetes:<cluster>".
  const caller = `kubernetes:${cluster.name}`;
  const log: Logger = services.log.child({ component: 'kubernetes', cluster: cluster.name });
  const field = `kubernetes[${index}]`;
  const keyConfig = config.keys.find((k) => k.name === cluster.key)!;
  const clock = new KeySetClock();

  // A key loaded at start with an alg kube-apiserver cannot take stops start-up; one that changes type later
  // (re-created in Vault) is refused per call with FAILED_PRECONDITION.
  const usable = (view: KeyView | undefined): KeyView => {
    if (!view) throw new VaultUnavailableError('read_key', `key "${cluster.key}" is not loaded from Vault yet; see /readyz and the logs`, 2, 'not_loaded');
    if (!KUBERNETES_ALGS.includes(view.alg)) {
      throw new RpcError(status.FAILED_PRECONDITION, `key "${cluster.key}" signs ${view.alg}; kube-apiserver accepts only ${KUBERNETES_ALGS.join(', ')}`);
    }
    return view;
  };
  const initial = keyring.view(cluster.key);
  if (initial && !KUBERNETES_ALGS.includes(initial.alg)) {
    throw new ConfigError(`${field}.key`, `key "${cluster.key}" signs ${initial.alg} (Transit type ${initial.type}); kube-apiserver accepts only ${KUBERNETES_ALGS.join(', ')}`);
  }

  /** Runs one RPC: metrics, a log line, and the error → status mapping. */
  function handler<Req, Res>(method: string, work: (request: Req) => Promise<Res> | Res) {
    return (call: { request: Req }, callback: (error: { code: status; details: string } | null, value?: Res) => void) => {
      const started = performance.now();
      Promise.try(work, call.request).then(
        (value) => {
          const ms = performance.now() - started;
          metrics.kubernetesRpcs.inc({ cluster: cluster.name, method, outcome: 'ok' });
          metrics.kubernetesRpcDuration.observe({ cluster: cluster.name, method }, ms / 1000);
          if (log.isLevelEnabled('debug')) log.debug({ event: 'rpc', method, outcome: 'ok', ms }, 'ExternalJWTSigner call');
          callback(null, value);
        },
        (error: unknown) => {
          const ms = performance.now() - started;
          const code = grpcStatusOf(error);
          const outcome = OUTCOME[code] ?? 'error';
          metrics.kubernetesRpcs.inc({ cluster: cluster.name, method, outcome });
          metrics.kubernetesRpcDuration.observe({ cluster: cluster.name, method }, ms / 1000);
          if (error instanceof VaultUnavailableError && (error.reason === 'circuit_open' || error.reason === 'overloaded')) {
            metrics.shedRequests.inc({ reason: error.reason });
          }
          const message = error instanceof Error ? error.message : String(error);
          const level = code === status.INVALID_ARGUMENT ? 'info' : code === status.INTERNAL ? 'error' : 'warn';
          log[level]({ event: 'rpc', method, outcome, ms, error: { type: (error as Error)?.name, message } }, 'ExternalJWTSigner call failed');
          callback({ code, details: code === status.INTERNAL && !(error instanceof RpcError || error instanceof SignetError) ? 'internal error; see Signet\'s log' : message });
        },
      );
    };
  }

  const implementation: UntypedServiceImplementation = {
    Sign: handler('Sign', async (request: { claims: string }) => {
      const requestId = randomUUID();
      let answer: { header: string; signature: string };
      let signed;
      try {
        usable(keyring.view(cluster.key));
        checkClaims(request.claims, Date.now() / 1000, keyConfig.maxTtl, config.clockSkew);
        signed = await signer.signPayload(cluster.key, request.claims);
        if (!KUBERNETES_ALGS.includes(signed.alg)) throw new RpcError(status.FAILED_PRECONDITION, `key "${cluster.key}" signs ${signed.alg}`);
        const { publicKey, kid, version } = signed.version;
        // kube-apiserver hands the token out without checking it: Signet checks it instead.
        if (!publicKey || !verifySignature(signed.alg, publicKey, `${signed.header}.${request.claims}`, Buffer.from(signed.signature, 'base64url'))) {
          throw new RpcError(status.INTERNAL, `the signature Vault returned for key "${cluster.key}" version ${version} (kid ${kid}) does not verify with that version's public key; not answered`);
        }
        answer = { header: signed.header, signature: signed.signature };
      } catch (error) {
        // A refusal is recorded too (claim names only), and answered once its record is written.
        await audit.signDecision({ requestId, caller, key: cluster.key, claims: claimsForAudit(request.claims), error });
        throw error;
      }
      // The signature leaves only after its audit record is written (when auditing is on).
      const recorded = audit.signDecision({
        requestId, caller, key: cluster.key,
        result: { token: `${signed.header}.${request.claims}.${signed.signature}`, kid: signed.version.kid, alg: signed.alg, key: cluster.key, key_version: signed.version.version },
      });
      if (recorded) await recorded;
      return answer;
    }),
    FetchKeys: handler('FetchKeys', () => {
      const now = Date.now() / 1000;
      const view = usable(keyring.view(cluster.key, now));
      const statics = keyring.staticKeys(now);
      // A static key leaving at its end date is a change kube-apiserver must see in time, as a version's is.
      const nextStaticEnd = Math.min(...statics.filter((k) => k.active).map((k) => k.until - now));
      return {
        keys: [...publishedKeys(view), ...staticPublishedKeys(statics, KUBERNETES_ALGS)],
        dataTimestamp: timestamp(clock.observe(view, now)),
        refreshHintSeconds: Math.min(refreshHint(view, now, config.jwks.maxAge), Math.max(1, Math.ceil(nextStaticEnd))),
      };
    }),
    Metadata: handler('Metadata', () => ({ maxTokenExpirationSeconds: keyConfig.maxTtl })),
  };

  const server = new Server({
    'grpc.max_receive_message_length': MAX_CLAIMS_LENGTH + 1024,
    'grpc.max_send_message_length': 4 * 1024 * 1024,
  });
  for (const definition of serviceDefinitions()) server.addService(definition, implementation);

  const gid = cluster.socketGroup === undefined ? undefined : resolveGroup(cluster.socketGroup);
  // A socket left by a Signet that was killed is replaced; one another process answers on stops start-up.
  try {
    if (await clearStaleSocket(cluster.socket) === 'removed') {
      log.warn({ event: 'stale_socket_removed', path: cluster.socket }, `removed a stale socket at ${cluster.socket} left by a process that exited without closing it`);
    }
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`${field}.socket`, error.message.replace(/^configuration: listen: /, ''));
    throw error;
  }
  // The socket never exists with a looser mode than configured: the umask is narrowed around the bind.
  const previous = process.umask(~cluster.socketMode & 0o777);
  try {
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix:${cluster.socket}`, ServerCredentials.createInsecure(), (error) => (error ? reject(error) : resolve()));
    });
  } catch (error) {
    throw new ConfigError(`${field}.socket`, `cannot listen on ${cluster.socket}: ${(error as Error).message}`);
  } finally {
    process.umask(previous);
  }
  try {
    chmodSync(cluster.socket, cluster.socketMode);
    if (gid !== undefined) chownSync(cluster.socket, -1, gid);
  } catch (error) {
    server.forceShutdown();
    throw new ConfigError(`${field}.socket_group`, `cannot give ${cluster.socket} to group "${cluster.socketGroup}" (${(error as NodeJS.ErrnoException).code ?? 'error'}): Signet's user must belong to it`);
  }
  log.info({ event: 'listening_kubernetes', socket: cluster.socket, key: cluster.key }, `ExternalJWTSigner for cluster "${cluster.name}" on unix:${cluster.socket} (key ${cluster.key})`);

  return {
    cluster,
    socket: cluster.socket,
    close: () => new Promise<void>((resolve) => {
      // In-flight signs finish (bounded by sign_timeout); a stuck connection is cut after the grace.
      const timer = setTimeout(() => server.forceShutdown(), 5000);
      timer.unref();
      server.tryShutdown(() => {
        clearTimeout(timer);
        try { unlinkSync(cluster.socket); } catch { /* already gone */ }
        resolve();
      });
    }),
  };
}

/** Starts the signer of every configured cluster; on failure, closes those already started. */
export async function startKubernetesSigners(services: Services): Promise<KubernetesSigner[]> {
  const started: KubernetesSigner[] = [];
  try {
    for (const [index, cluster] of services.config.kubernetes.entries()) started.push(await startKubernetesSigner(services, cluster, index));
  } catch (error) {
    await Promise.all(started.map((s) => s.close()));
    throw error;
  }
  return started;
}
