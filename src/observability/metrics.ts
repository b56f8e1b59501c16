// Prometheus metrics (DESIGN §8): `signet_` prefix, base units, bounded labels only (key name, alg, outcome,
// Vault operation). Sign and verify latencies have sub-millisecond buckets: prom-client's defaults start at
// 5 ms, where every sign would land in the first bucket. One registry per app, so tests can build many apps.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const FAST_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

export function createMetrics() {
  const registry = new Registry();
  // prom-client's defaults under Signet's prefix: signet_process_cpu_seconds_total, signet_nodejs_heap_size_used_bytes…
  collectDefaultMetrics({ register: registry, prefix: 'signet_' });
  // prom-client exports these three as gauges named *_total, which `promtool check metrics` refuses (only counters
  // end in _total); each is the sum of its per-type gauge without the suffix (signet_nodejs_active_handles…).
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(`signet_${name}`);
  }
  const r = [registry];
  return {
    registry,
    signRequests: new Counter({ name: 'signet_sign_requests_total', help: 'Sign requests by key and outcome.', labelNames: ['key', 'outcome'], registers: r }),
    signDuration: new Histogram({ name: 'signet_sign_duration_seconds', help: 'Time to answer a sign request, seconds.', labelNames: ['key'], buckets: FAST_BUCKETS, registers: r }),
    verifyRequests: new Counter({ name: 'signet_verify_requests_total', help: 'Verify requests by outcome.', labelNames: ['outcome'], registers: r }),
    verifyDuration: new Histogram({ name: 'signet_verify_duration_seconds', help: 'Time to answer a verify request, seconds.', buckets: FAST_BUCKETS, registers: r }),
    vaultRequests: new Counter({ name: 'signet_vault_requests_total', help: 'Calls to Vault by operation and outcome (ok, error, unreachable).', labelNames: ['operation', 'outcome'], registers: r }),
    vaultDuration: new Histogram({ name: 'signet_vault_request_duration_seconds', help: 'Duration of calls to Vault by operation, seconds.', labelNames: ['operation'], buckets: FAST_BUCKETS, registers: r }),
    batchSize: new Histogram({ name: 'signet_sign_batch_size', help: 'Items per Transit sign call.', labelNames: ['key'], buckets: BATCH_BUCKETS, registers: r }),
    queueLength: new Gauge({ name: 'signet_sign_queue_length', help: 'Sign requests waiting for a Vault call, by key.', labelNames: ['key'], registers: r }),
    callsInFlight: new Gauge({ name: 'signet_vault_sign_calls_in_flight', help: 'Transit sign calls out now, by key.', labelNames: ['key'], registers: r }),
    callsLimit: new Gauge({ name: 'signet_vault_sign_calls_limit', help: 'Full batches a key may have at Vault at once now: adapted to Vault\'s latency, from batching.min_in_flight to batching.max_in_flight.', labelNames: ['key'], registers: r }),
    signingVersion: new Gauge({ name: 'signet_key_signing_version', help: 'Vault key version that signs now, by key.', labelNames: ['key', 'alg'], registers: r }),
    signingKeyAge: new Gauge({ name: 'signet_key_signing_version_age_seconds', help: 'Age of the signing version (since its creation in Vault), seconds.', labelNames: ['key'], registers: r }),
    autoRotatePeriod: new Gauge({ name: 'signet_key_auto_rotate_period_seconds', help: "Transit's auto_rotate_period of the key, seconds (0: not set).", labelNames: ['key'], registers: r }),
    publishDelay: new Gauge({ name: 'signet_key_publish_delay_seconds', help: 'Configured publish_delay of the key, seconds.', labelNames: ['key'], registers: r }),
    nextStateChange: new Gauge({ name: 'signet_key_next_state_change_seconds', help: 'Seconds until a version of the key changes state by schedule (absent: none scheduled).', labelNames: ['key'], registers: r }),
    publishedKeys: new Gauge({ name: 'signet_jwks_keys', help: 'Public keys published in the JWKS.', registers: r }),
    keyRefresh: new Counter({ name: 'signet_key_refresh_total', help: 'Key state reads from Vault by key and outcome.', labelNames: ['key', 'outcome'], registers: r }),
    keyLoaded: new Gauge({ name: 'signet_key_loaded', help: '1 when the key state is loaded from Vault, else 0.', labelNames: ['key'], registers: r }),
    keyStateAge: new Gauge({ name: 'signet_key_state_age_seconds', help: 'Seconds since the key state was last read from Vault.', labelNames: ['key'], registers: r }),
    tokenTtl: new Gauge({ name: 'signet_vault_token_ttl_seconds', help: 'Seconds left on the Vault token (-1: never expires).', registers: r }),
    authenticated: new Gauge({ name: 'signet_vault_authenticated', help: '1 when Signet holds a Vault token that Vault accepted.', registers: r }),
    authFailures: new Counter({ name: 'signet_vault_auth_failures_total', help: 'Failed Vault logins, lookups or renewals, by reason.', labelNames: ['reason'], registers: r }),
    vaultUp: new Gauge({ name: 'signet_vault_up', help: '1 when Vault answered the last health probe unsealed (active or standby), else 0.', registers: r }),
    circuitState: new Gauge({ name: 'signet_vault_circuit_state', help: 'Circuit breaker of the sign path: 0 closed, 1 half-open, 2 open.', registers: r }),
    signRetries: new Counter({ name: 'signet_sign_retries_total', help: 'Sign calls to Vault tried a second time, by reason.', labelNames: ['reason'], registers: r }),
    httpRefusals: new Counter({ name: 'signet_http_refusals_total', help: 'Requests refused at the entrance, by reason (host, caller_missing, caller_invalid, caller_unavailable).', labelNames: ['reason'], registers: r }),
    legacyAlias: new Gauge({ name: 'signet_legacy_alias_active', help: 'Old tokens accepted through an alias (kind: legacy_kid, missing_kid) or a static key (kind: static): 1 while accepted, 0 once expired or retired.', labelNames: ['key', 'kind'], registers: r }),
    legacyVerifications: new Counter({ name: 'signet_legacy_verifications_total', help: 'Tokens verified through an alias or a static key, by key and kind (legacy_kid, missing_kid, static): old tokens still in use.', labelNames: ['key', 'kind'], registers: r }),
    kubernetesRpcs: new Counter({ name: 'signet_kubernetes_rpc_requests_total', help: 'ExternalJWTSigner calls from kube-apiserver by cluster, method (Sign, FetchKeys, Metadata) and outcome (ok or the gRPC status).', labelNames: ['cluster', 'method', 'outcome'], registers: r }),
    kubernetesRpcDuration: new Histogram({ name: 'signet_kubernetes_rpc_duration_seconds', help: 'Time to answer an ExternalJWTSigner call, seconds.', labelNames: ['cluster', 'method'], buckets: FAST_BUCKETS, registers: r }),
    shedRequests: new Counter({ name: 'signet_shed_requests_total', help: 'Requests refused at once with 503, by reason (circuit_open, overloaded, event_loop).', labelNames: ['reason'], registers: r }),
    auditWritten: new Counter({ name: 'signet_audit_records_written_total', help: 'Audit records written, by sink (file, stdout).', labelNames: ['sink'], registers: r }),
    auditFailed: new Counter({ name: 'signet_audit_records_failed_total', help: 'Audit records that could not be written, by sink (their signs were refused with 503 unless audit.fail_closed is false).', labelNames: ['sink'], registers: r }),
    auditBytes: new Counter({ name: 'signet_audit_bytes_written_total', help: 'Bytes of audit records written, by sink.', labelNames: ['sink'], registers: r }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
