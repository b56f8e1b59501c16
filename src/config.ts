// Configuration: one YAML (or JSON) file, overridden by the standard VAULT_* variables and SIGNET_*, turned into
// one validated Config. Every error names the field (DESIGN §2). Values of secrets are never echoed.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { parseAuditConfig, type AuditConfig } from './audit/config.ts';
import { parseDuration } from './duration.ts';
import { ConfigError } from './errors.ts';
import { isJwsAlg, type JwsAlg } from './jwt/algorithms.ts';
import type { KeyConfig, StaticKeyConfig } from './keys/config.ts';
import { parseDate, parseLegacyUntil, type LegacyConfig } from './keys/legacy.ts';
import { REGISTERED_BY_SIGNET, type SignetClaim } from './jwt/claims.ts';
import {
  KUBERNETES_ALGS, KUBERNETES_DEFAULT_SOCKET_MODE, KUBERNETES_MIN_MAX_TTL, type KubernetesClusterConfig,
} from './kubernetes/config.ts';
import { parseCallersConfig, parseKeyCallers, type CallersConfig } from './security/callers.ts';
import { isLoopbackListen, parseAllowedHosts, splitHostPort } from './security/hosts.ts';
import { parseListenMode } from './security/socket.ts';
import type { AuthConfig, VaultConfig } from './vault/config.ts';

export interface Config {
  listen: string;
  vault: VaultConfig;
  keys: KeyConfig[];
  defaultKey: string;
  jwks: { maxAge: number };
  refreshInterval: number;
  clockSkew: number;
  bodyLimit: number;
  logLevel: string;
  /** Public base URL for the discovery document's jwks_uri; default http://<listen>. */
  publicUrl?: string;
  /** Caller authentication; undefined: none (then only loopback or a unix socket may be listened on). */
  callers?: CallersConfig;
  /** Host names besides loopback that requests may name in their Host header (DNS-rebinding defence). */
  allowedHosts: string[];
  /** Mode of a unix socket (listen: unix:/path). */
  listenMode: number;
  /** Group that owns a unix socket (name or gid); default the process's. */
  listenGroup?: string;
  /** host:port of the read-only public listener (JWKS, discovery, health, metrics); undefined: none. */
  publicListen?: string;
  batching: BatchingConfig;
  staticKeys: StaticKeyConfig[];
  readiness: ReadinessConfig;
  /** The audit trail of sign decisions; undefined: off. */
  audit?: AuditConfig;
  /** Kubernetes clusters whose kube-apiserver signs service-account tokens through Signet (ExternalJWTSigner). */
  kubernetes: KubernetesClusterConfig[];
  /** The Vault-compatible endpoint (/v1/<mount>/sign/:key …); undefined: off. */
  vaultApi?: VaultApiConfig;
  /** batch_input in sign requests (both APIs). */
  signBatch: SignBatchConfig;
}

export interface VaultApiConfig {
  /** The path under /v1/ that Vault clients write to, as a Vault mount: jwt → /v1/jwt/sign/:key. */
  mount: string;
}

export interface SignBatchConfig {
  /** Items a batch_input may hold; more are refused with 413. */
  maxItems: number;
}

export interface ReadinessConfig {
  /**
   * How long Vault may be unusable (unreachable, sealed, refusing Signet's token, circuit open) before /readyz
   * fails, seconds. A sidecar's readiness is its pod's: a short Vault blip must not take every app out of its
   * Service. 0: readiness follows Vault at once.
   */
  vaultOutageTolerance: number;
}

export interface BatchingConfig {
  enabled: boolean;
  /** Vault calls in flight per key version, at most; below it the batcher follows Vault's latency. */
  maxInFlight: number;
  /** Full batches per key the adaptive limit keeps at Vault at least (its floor). */
  minInFlight: number;
  /** Calls in flight per key version that may carry a batch that is not full. */
  partialInFlight: number;
  /** Vault calls a caller's batch_input is spread over when it finds its key version idle. */
  loneBatchCalls: number;
  maxBatchSize: number;
  /** Sign requests waiting per key version before new ones are refused with 503. */
  maxQueue: number;
  /** Process-wide bound on the bytes of signing input held by pending signs, across all keys. */
  maxPendingBytes: number;
}

export const DEFAULTS = {
  listen: '127.0.0.1:8250',
  vaultAddress: 'http://127.0.0.1:8200',
  mount: 'transit',
  vaultTimeout: 5,
  signTimeout: 2,
  defaultTtl: 300,
  maxTtl: 3600,
  publishDelay: 600,
  jwksMaxAge: 300,
  refreshInterval: 30,
  clockSkew: 60,
  bodyLimit: 16 * 1024,
  logLevel: 'info',
  maxInFlight: 16,
  minInFlight: 2,
  partialInFlight: 1,
  loneBatchCalls: 2,
  maxBatchSize: 256,
  maxQueue: 2048,
  maxPendingBytes: 16 * 1024 * 1024,
  vaultOutageTolerance: 300,
  vaultApiMount: 'jwt',
} as const;

type Env = Readonly<Record<string, string | undefined>>;
type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function onlyKnown(obj: Obj, field: string, known: readonly string[]): void {
  for (const name of Object.keys(obj)) {
    if (!known.includes(name)) {
      const where = field ? `${field}.${name}` : name;
      throw new ConfigError(where, `unknown field (known here: ${known.join(', ')})`);
    }
  }
}

function object(value: unknown, field: string): Obj {
  if (value === undefined) return {};
  if (!isObj(value)) throw new ConfigError(field, 'must be a mapping');
  return value;
}

function string(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value.length === 0) throw new ConfigError(field, 'must be a non-empty string');
  return value;
}

function requiredString(value: unknown, field: string): string {
  const result = string(value, field);
  if (result === undefined) throw new ConfigError(field, 'is required');
  return result;
}

function duration(value: unknown, field: string, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  const seconds = parseDuration(value);
  if (seconds === undefined) {
    throw new ConfigError(field, 'must be a duration such as "90s", "15m", "1h", "7d", or a number of seconds');
  }
  return seconds;
}

function boolEnv(value: string | undefined, name: string): boolean {
  // Vault's CLI parses VAULT_SKIP_VERIFY as a boolean; node-vault treats any non-empty value (even "false") as
  // true, which is why Signet parses it itself and never lets node-vault read it.
  if (value === undefined || value === '') return false;
  if (/^(1|t|true|yes)$/i.test(value)) return true;
  if (/^(0|f|false|no)$/i.test(value)) return false;
  throw new ConfigError(name, 'must be true or false');
}

function parseAuth(raw: unknown, env: Env): AuthConfig {
  const auth = object(raw, 'vault.auth');
  const method = string(auth.method, 'vault.auth.method') ?? 'token';
  switch (method) {
    case 'token': {
      onlyKnown(auth, 'vault.auth', ['method', 'token_file']);
      const tokenFile = string(auth.token_file, 'vault.auth.token_file');
      const token = env.VAULT_TOKEN || undefined;
      if (!tokenFile && !token) {
        throw new ConfigError('vault.auth', 'method token needs VAULT_TOKEN in the environment or vault.auth.token_file');
      }
      return { method, tokenFile, token: tokenFile ? undefined : token };
    }
    case 'approle': {
      onlyKnown(auth, 'vault.auth', ['method', 'mount', 'role_id', 'role_id_file', 'secret_id_file']);
      const roleId = string(auth.role_id, 'vault.auth.role_id');
      const roleIdFile = string(auth.role_id_file, 'vault.auth.role_id_file');
      if (!roleId && !roleIdFile) throw new ConfigError('vault.auth.role_id', 'is required (or vault.auth.role_id_file)');
      return {
        method, mount: string(auth.mount, 'vault.auth.mount') ?? 'approle', roleId, roleIdFile,
        secretIdFile: string(auth.secret_id_file, 'vault.auth.secret_id_file'),
      };
    }
    case 'kubernetes':
    case 'jwt': {
      onlyKnown(auth, 'vault.auth', ['method', 'mount', 'role', 'token_file']);
      return {
        method,
        mount: string(auth.mount, 'vault.auth.mount') ?? method,
        role: requiredString(auth.role, 'vault.auth.role'),
        tokenFile: string(auth.token_file, 'vault.auth.token_file')
          ?? (method === 'kubernetes' ? '/var/run/secrets/kubernetes.io/serviceaccount/token' : requiredString(undefined, 'vault.auth.token_file')),
      };
    }
    default:
      throw new ConfigError('vault.auth.method', 'must be one of token, approle, kubernetes, jwt');
  }
}

const KEY_FIELDS = [
  'name', 'alg', 'issuer', 'audiences', 'audience_pattern', 'subject_pattern', 'default_ttl', 'max_ttl', 'publish_delay',
  'caller_claims', 'callers', 'require_audience', 'allowed_typ', 'legacy_kid', 'accept_missing_kid', 'legacy_until',
];

/** A claim pattern from the configuration, anchored so it must match the whole value. */
function pattern(value: unknown, field: string): RegExp | undefined {
  const source = string(value, field);
  if (source === undefined) return undefined;
  if (source.length > 512) throw new ConfigError(field, 'must be at most 512 characters');
  try {
    return new RegExp(`^(?:${source})$`, 'u');
  } catch (error) {
    throw new ConfigError(field, `is not a valid regular expression (${(error as Error).message.replace(/^Invalid regular expression: /, '')})`);
  }
}

function parseKey(raw: unknown, index: number, defaults: { jwksMaxAge: number; refreshInterval: number; clockSkew: number }): KeyConfig {
  const field = `keys[${index}]`;
  if (!isObj(raw)) throw new ConfigError(field, 'must be a mapping');
  onlyKnown(raw, field, KEY_FIELDS);
  const name = requiredString(raw.name, `${field}.name`);
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(name)) throw new ConfigError(`${field}.name`, 'must be a Transit key name (letters, digits, _ . -)');
  const alg = string(raw.alg, `${field}.alg`);
  if (alg !== undefined && !isJwsAlg(alg)) throw new ConfigError(`${field}.alg`, `unknown JWS alg "${alg}"`);
  const issuer = requiredString(raw.issuer, `${field}.issuer`);
  let audiences: string[] | undefined;
  if (raw.audiences !== undefined) {
    if (!Array.isArray(raw.audiences) || raw.audiences.length === 0 || raw.audiences.some((a) => typeof a !== 'string' || a === '')) {
      throw new ConfigError(`${field}.audiences`, 'must be a non-empty list of strings');
    }
    audiences = raw.audiences as string[];
  }
  const defaultTtl = duration(raw.default_ttl, `${field}.default_ttl`, DEFAULTS.defaultTtl);
  const maxTtl = duration(raw.max_ttl, `${field}.max_ttl`, DEFAULTS.maxTtl);
  if (defaultTtl < 1) throw new ConfigError(`${field}.default_ttl`, 'must be at least 1s');
  if (maxTtl < defaultTtl) throw new ConfigError(`${field}.max_ttl`, `must be at least default_ttl (${defaultTtl}s)`);
  // A verifier may hold a JWKS for max_age, and a Signet instance may learn of a new version refresh_interval
  // late: a version signing before both have passed would make verifiers with a cached JWKS reject its tokens.
  const minimumDelay = defaults.jwksMaxAge + defaults.refreshInterval + defaults.clockSkew;
  const publishDelay = duration(raw.publish_delay, `${field}.publish_delay`, Math.max(DEFAULTS.publishDelay, minimumDelay + 60));
  if (publishDelay <= minimumDelay) {
    throw new ConfigError(
      `${field}.publish_delay`,
      `must exceed jwks.max_age + refresh_interval + clock_skew (${minimumDelay}s), or verifiers with a cached JWKS reject new tokens`,
    );
  }
  let callerClaims: SignetClaim[] = [];
  if (raw.caller_claims !== undefined) {
    if (!Array.isArray(raw.caller_claims) || raw.caller_claims.some((c) => !(REGISTERED_BY_SIGNET as readonly unknown[]).includes(c))) {
      throw new ConfigError(`${field}.caller_claims`, `must be a list of: ${REGISTERED_BY_SIGNET.join(', ')}`);
    }
    callerClaims = raw.caller_claims as SignetClaim[];
  }
  const callers = parseKeyCallers(raw.callers, `${field}.callers`);
  const audiencePattern = pattern(raw.audience_pattern, `${field}.audience_pattern`);
  if (raw.require_audience !== undefined && typeof raw.require_audience !== 'boolean') {
    throw new ConfigError(`${field}.require_audience`, 'must be true or false');
  }
  const requireAudience = (raw.require_audience as boolean | undefined) ?? (audiences !== undefined || audiencePattern !== undefined);
  let allowedTyp = ['JWT'];
  if (raw.allowed_typ !== undefined) {
    if (!Array.isArray(raw.allowed_typ) || raw.allowed_typ.length === 0
      || raw.allowed_typ.some((t) => typeof t !== 'string' || !TYP.test(t))) {
      throw new ConfigError(`${field}.allowed_typ`, 'must be a non-empty list of media types such as "JWT" or "at+jwt"');
    }
    allowedTyp = raw.allowed_typ as string[];
  }
  return {
    name, alg: alg as JwsAlg | undefined, issuer, audiences, audiencePattern,
    subjectPattern: pattern(raw.subject_pattern, `${field}.subject_pattern`),
    defaultTtl, maxTtl, publishDelay, callerClaims, callers, requireAudience, allowedTyp,
    legacy: parseLegacy(raw, field),
  };
}

/** legacy_kid, accept_missing_kid and legacy_until of a key: all or nothing, since an alias must end. */
function parseLegacy(raw: Obj, field: string): LegacyConfig | undefined {
  const kid = string(raw.legacy_kid, `${field}.legacy_kid`);
  if (kid !== undefined && kid.length > 256) throw new ConfigError(`${field}.legacy_kid`, 'must be at most 256 characters');
  if (raw.accept_missing_kid !== undefined && typeof raw.accept_missing_kid !== 'boolean') {
    throw new ConfigError(`${field}.accept_missing_kid`, 'must be true or false');
  }
  const acceptMissingKid = raw.accept_missing_kid === true;
  if (raw.legacy_until === undefined || raw.legacy_until === null) {
    if (kid !== undefined || acceptMissingKid) {
      throw new ConfigError(`${field}.legacy_until`, 'is required with legacy_kid or accept_missing_kid: the old tokens must stop verifying at some point (a date, or their longest lifetime as a duration counted from the import)');
    }
    return undefined;
  }
  if (kid === undefined && !acceptMissingKid) {
    throw new ConfigError(`${field}.legacy_until`, 'applies only with legacy_kid or accept_missing_kid');
  }
  const until = parseLegacyUntil(raw.legacy_until, parseDuration);
  if (!until) throw new ConfigError(`${field}.legacy_until`, 'must be a date ("2026-12-31" or "2026-12-31T12:00:00Z") or a duration such as "30d" counted from the import');
  return { kid, acceptMissingKid, until };
}

const STATIC_KEY_FIELDS = ['name', 'file', 'kid', 'alg', 'issuer', 'until'];

function parseStaticKeys(raw: unknown, keys: KeyConfig[]): StaticKeyConfig[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ConfigError('static_keys', 'must be a list of public keys (name, file, kid, alg, issuer, until)');
  const names = new Set(keys.map((k) => k.name));
  return raw.map((entry, i) => {
    const field = `static_keys[${i}]`;
    if (!isObj(entry)) throw new ConfigError(field, 'must be a mapping');
    onlyKnown(entry, field, STATIC_KEY_FIELDS);
    const name = requiredString(entry.name, `${field}.name`);
    if (names.has(name)) throw new ConfigError(`${field}.name`, `"${name}" is already the name of a key`);
    names.add(name);
    const alg = string(entry.alg, `${field}.alg`);
    if (alg !== undefined && !isJwsAlg(alg)) throw new ConfigError(`${field}.alg`, `unknown JWS alg "${alg}"`);
    const until = parseDate(entry.until);
    if (until === undefined) throw new ConfigError(`${field}.until`, 'is required: a date ("2026-12-31" or "2026-12-31T12:00:00Z") after which the key is no longer published or accepted');
    return {
      name, file: requiredString(entry.file, `${field}.file`), kid: string(entry.kid, `${field}.kid`), alg: alg as JwsAlg | undefined,
      issuer: requiredString(entry.issuer, `${field}.issuer`), until,
    };
  });
}

/** One key at most takes tokens without a kid, and no two aliases or static keys claim the same kid. */
function checkLegacyKids(keys: KeyConfig[], statics: StaticKeyConfig[]): void {
  const missing = keys.map((k, i) => [k, i] as const).filter(([k]) => k.legacy?.acceptMissingKid);
  if (missing.length > 1) {
    throw new ConfigError(`keys[${missing[1]![1]}].accept_missing_kid`, `is already set on key "${missing[0]![0].name}": a token without a kid can be tried against one key only`);
  }
  const kids = new Map<string, string>();
  const claim = (kid: string | undefined, field: string) => {
    if (kid === undefined) return;
    const other = kids.get(kid);
    if (other) throw new ConfigError(field, `kid "${kid}" is already claimed by ${other}`);
    kids.set(kid, field);
  };
  keys.forEach((k, i) => claim(k.legacy?.kid, `keys[${i}].legacy_kid`));
  statics.forEach((s, i) => claim(s.kid, `static_keys[${i}].kid`));
}

const TOP_FIELDS = [
  'listen', 'vault', 'keys', 'default_key', 'jwks', 'refresh_interval', 'clock_skew', 'body_limit', 'log_level', 'public_url',
  'callers', 'allowed_hosts', 'listen_mode', 'listen_group', 'public_listen', 'batching', 'readiness', 'audit', 'kubernetes',
  'vault_api', 'sign_batch', 'static_keys',
];

/** A `typ` header value: a media type without its "application/" prefix (RFC 7515 §4.1.9). */
export const TYP = /^[A-Za-z0-9.+/-]{1,64}$/;

function parseReadiness(raw: unknown): ReadinessConfig {
  const readiness = object(raw, 'readiness');
  onlyKnown(readiness, 'readiness', ['vault_outage_tolerance']);
  return { vaultOutageTolerance: duration(readiness.vault_outage_tolerance, 'readiness.vault_outage_tolerance', DEFAULTS.vaultOutageTolerance) };
}

/** Items per Vault call, at most: OpenBao refuses a transit batch_input of 500 (backend-differences.test.ts). */
export const MAX_BATCH_ITEMS = 480;

function positiveInteger(value: unknown, field: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new ConfigError(field, `must be a whole number from 1 to ${max}`);
  }
  return value;
}

function parseBatching(raw: unknown): BatchingConfig {
  const batching = object(raw, 'batching');
  onlyKnown(batching, 'batching', ['enabled', 'max_in_flight', 'min_in_flight', 'partial_in_flight', 'lone_batch_calls', 'max_batch_size', 'max_queue', 'max_pending_bytes']);
  if (batching.enabled !== undefined && typeof batching.enabled !== 'boolean') throw new ConfigError('batching.enabled', 'must be true or false');
  const maxInFlight = positiveInteger(batching.max_in_flight, 'batching.max_in_flight', DEFAULTS.maxInFlight, 256);
  const minInFlight = positiveInteger(batching.min_in_flight, 'batching.min_in_flight', Math.min(DEFAULTS.minInFlight, maxInFlight), 256);
  if (minInFlight > maxInFlight) {
    throw new ConfigError('batching.min_in_flight', `must not exceed batching.max_in_flight (${maxInFlight}): it is the least the adaptive limit below it keeps`);
  }
  const partialInFlight = positiveInteger(batching.partial_in_flight, 'batching.partial_in_flight', Math.min(DEFAULTS.partialInFlight, maxInFlight), 256);
  if (partialInFlight > maxInFlight) {
    throw new ConfigError('batching.partial_in_flight', `must not exceed batching.max_in_flight (${maxInFlight}): it is the part of those calls that may carry a batch that is not full`);
  }
  const loneBatchCalls = positiveInteger(batching.lone_batch_calls, 'batching.lone_batch_calls', Math.min(DEFAULTS.loneBatchCalls, maxInFlight), 256);
  if (loneBatchCalls > maxInFlight) {
    throw new ConfigError('batching.lone_batch_calls', `must not exceed batching.max_in_flight (${maxInFlight}): a spread batch's calls are among those`);
  }
  return {
    enabled: batching.enabled !== false,
    maxInFlight,
    minInFlight,
    partialInFlight,
    loneBatchCalls,
    // OpenBao (2.7, default listener limits) refuses a JSON body of more than 1,000 strings (keys and values): two
    // per batch_input item, up to 9 for a call's parameters (PS256: marshaling_algorithm, signature_algorithm,
    // salt_length, key_version, batch_input). So no Vault call carries more than 480, whichever server it is.
    maxBatchSize: positiveInteger(batching.max_batch_size, 'batching.max_batch_size', DEFAULTS.maxBatchSize, MAX_BATCH_ITEMS),
    maxQueue: positiveInteger(batching.max_queue, 'batching.max_queue', DEFAULTS.maxQueue, 1_000_000),
    maxPendingBytes: positiveInteger(batching.max_pending_bytes, 'batching.max_pending_bytes', DEFAULTS.maxPendingBytes, 2 ** 40),
  };
}
// ---------------------------------------------------------------------------------------------------------
// vault_api and sign_batch (issue 14): the Vault-compatible endpoint and batch_input.

/** First path segments under /v1/ that Signet's own API uses (and Vault's sys/): not available as a mount. */
const RESERVED_MOUNTS = ['sign', 'verify', 'jwks', 'keys', 'sys', 'auth', 'identity'];
/** The smallest useful batch item ({"claims":{"sub":"…"}} with a short subject, a comma) is about 64 bytes. */
const BYTES_PER_BATCH_ITEM = 64;

function parseVaultApi(raw: unknown): VaultApiConfig | undefined {
  const api = object(raw, 'vault_api');
  onlyKnown(api, 'vault_api', ['enabled', 'mount']);
  if (api.enabled !== undefined && typeof api.enabled !== 'boolean') throw new ConfigError('vault_api.enabled', 'must be true or false');
  if (api.enabled === false) return undefined;
  const mount = (string(api.mount, 'vault_api.mount') ?? DEFAULTS.vaultApiMount).replace(/^\/+|\/+$/g, '');
  if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(mount) || mount.length > 128 || mount.split('/').some((p) => /^\.+$/.test(p))) {
    throw new ConfigError('vault_api.mount', 'must be a mount path such as "jwt" or "secret/jwt" (letters, digits, _ . -, separated by /)');
  }
  const first = mount.split('/')[0]!;
  if (RESERVED_MOUNTS.includes(first)) {
    throw new ConfigError('vault_api.mount', `must not start with "${first}/": /v1/${first} is ${first === 'sys' || first === 'auth' || first === 'identity' ? "Vault's own" : "Signet's own API"}`);
  }
  return { mount };
}

function parseSignBatch(raw: unknown, bodyLimit: number, maxQueue: number): SignBatchConfig {
  const batch = object(raw, 'sign_batch');
  onlyKnown(batch, 'sign_batch', ['max_items']);
  const sized = Math.max(1, Math.floor(bodyLimit / BYTES_PER_BATCH_ITEM));
  const maxItems = positiveInteger(batch.max_items, 'sign_batch.max_items', Math.min(sized, maxQueue), 100_000);
  // A batch larger than the sign queue of its key could never be queued whole.
  if (maxItems > maxQueue) throw new ConfigError('sign_batch.max_items', `must be at most batching.max_queue (${maxQueue}): a batch waits in that queue`);
  return { maxItems };
}

// --- kubernetes: Signet as kube-apiserver's external service-account token signer -----------------------------

function parseKubernetes(raw: unknown, keys: readonly KeyConfig[], listen: string): KubernetesClusterConfig[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ConfigError('kubernetes', 'must be a list of clusters (name, socket, key)');
  const clusters = raw.map((entry: unknown, i): KubernetesClusterConfig => {
    const field = `kubernetes[${i}]`;
    if (!isObj(entry)) throw new ConfigError(field, 'must be a mapping');
    onlyKnown(entry, field, ['name', 'socket', 'socket_mode', 'socket_group', 'key']);
    const name = requiredString(entry.name, `${field}.name`);
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new ConfigError(`${field}.name`, 'must be 1-64 letters, digits, _ . -');
    const socket = requiredString(entry.socket, `${field}.socket`);
    if (!socket.startsWith('/')) throw new ConfigError(`${field}.socket`, 'must be an absolute path (kube-apiserver names it in --service-account-signing-endpoint)');
    if (listen === `unix:${socket}`) throw new ConfigError(`${field}.socket`, 'must differ from listen');
    let socketMode = KUBERNETES_DEFAULT_SOCKET_MODE;
    if (entry.socket_mode !== undefined) {
      if (typeof entry.socket_mode !== 'string' || !/^0?[0-7]{3}$/.test(entry.socket_mode)) {
        throw new ConfigError(`${field}.socket_mode`, 'must be an octal string such as "0600" or "0660" (quoted: YAML reads 0660 unquoted as a decimal number)');
      }
      socketMode = Number.parseInt(entry.socket_mode, 8);
      // The gRPC API has no caller authentication: whoever can connect can mint this cluster's service-account tokens.
      if ((socketMode & 0o007) !== 0) {
        throw new ConfigError(`${field}.socket_mode`, `${entry.socket_mode} lets other local users connect, and whoever can connect can mint this cluster's service-account tokens; use "0600" or "0660"`);
      }
    }
    const key = requiredString(entry.key, `${field}.key`);
    const keyIndex = keys.findIndex((k) => k.name === key);
    if (keyIndex < 0) throw new ConfigError(`${field}.key`, `"${key}" is not one of the configured keys (add it to keys)`);
    const keyConfig = keys[keyIndex]!;
    if (keyConfig.alg !== undefined && !KUBERNETES_ALGS.includes(keyConfig.alg)) {
      throw new ConfigError(`keys[${keyIndex}].alg`, `kube-apiserver accepts only ${KUBERNETES_ALGS.join(', ')} (key "${key}" serves kubernetes cluster "${name}")`);
    }
    if (keyConfig.maxTtl < KUBERNETES_MIN_MAX_TTL) {
      throw new ConfigError(`keys[${keyIndex}].max_ttl`, `must be at least ${KUBERNETES_MIN_MAX_TTL}s: kube-apiserver refuses a signer whose longest token lifetime is shorter (key "${key}" serves kubernetes cluster "${name}")`);
    }
    if (keyConfig.callers !== undefined) {
      throw new ConfigError(`keys[${keyIndex}].callers`, `key "${key}" serves kubernetes cluster "${name}": only kube-apiserver signs with it, so no HTTP caller may be named`);
    }
    return { name, socket, socketMode, socketGroup: string(entry.socket_group, `${field}.socket_group`), key };
  });
  const names = new Set<string>();
  const sockets = new Set<string>();
  const usedKeys = new Set<string>();
  clusters.forEach((c, i) => {
    if (names.has(c.name)) throw new ConfigError(`kubernetes[${i}].name`, `cluster "${c.name}" is configured twice`);
    if (sockets.has(c.socket)) throw new ConfigError(`kubernetes[${i}].socket`, `${c.socket} is used by another cluster`);
    // A token minted for one cluster must never verify in another: one key per cluster.
    if (usedKeys.has(c.key)) throw new ConfigError(`kubernetes[${i}].key`, `key "${c.key}" already signs for another cluster; give each cluster its own Transit key`);
    names.add(c.name);
    sockets.add(c.socket);
    usedKeys.add(c.key);
  });
  return clusters;
}

const VAULT_FIELDS = ['address', 'mount', 'namespace', 'ca_cert', 'client_cert', 'client_key', 'timeout', 'sign_timeout', 'auth'];

/** Validates a parsed configuration document and applies the environment. */
export function buildConfig(doc: unknown, env: Env = process.env, options: { keysRequired?: boolean } = {}): Config {
  const root = object(doc ?? {}, '(top level)');
  onlyKnown(root, '', TOP_FIELDS);
  const vault = object(root.vault, 'vault');
  onlyKnown(vault, 'vault', VAULT_FIELDS);

  const listen = env.SIGNET_LISTEN || string(root.listen, 'listen') || DEFAULTS.listen;
  if (!listen.startsWith('unix:')) splitHostPort(listen);
  const callers = parseCallersConfig(root.callers);
  if (!isLoopbackListen(listen) && !callers) {
    throw new ConfigError(
      'listen',
      `${listen} is not a loopback address: anyone who can reach it could sign tokens. Listen on 127.0.0.1, ::1 or a unix socket, `
        + 'or configure caller authentication (callers.tokens_file) to listen beyond loopback',
    );
  }
  const listenMode = parseListenMode(root.listen_mode, listen, callers !== undefined);
  const listenGroup = string(root.listen_group, 'listen_group');
  // The public listener serves only what is public (keys, health, metrics), so it may bind any address.
  const publicListen = env.SIGNET_PUBLIC_LISTEN || string(root.public_listen, 'public_listen');
  if (publicListen !== undefined) {
    try {
      splitHostPort(publicListen);
    } catch {
      throw new ConfigError('public_listen', 'must be host:port or [ipv6]:port (a unix socket is not supported here)');
    }
    if (publicListen === listen) throw new ConfigError('public_listen', 'must differ from listen');
  }
  if (listenGroup !== undefined && !listen.startsWith('unix:')) throw new ConfigError('listen_group', 'applies only to a unix socket (listen: unix:/path)');

  const address = env.VAULT_ADDR || string(vault.address, 'vault.address') || DEFAULTS.vaultAddress;
  try {
    const url = new URL(address);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('scheme');
  } catch {
    throw new ConfigError(env.VAULT_ADDR ? 'VAULT_ADDR' : 'vault.address', 'must be an http:// or https:// URL');
  }
  // The address is logged at start-up and shown in errors: credentials in it would end up in every log.
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(address)) {
    throw new ConfigError(env.VAULT_ADDR ? 'VAULT_ADDR' : 'vault.address', 'must not contain credentials (user:password@); Signet authenticates with vault.auth');
  }
  const mount = string(vault.mount, 'vault.mount') ?? DEFAULTS.mount;
  if (!/^[A-Za-z0-9_.\-/]+$/.test(mount)) throw new ConfigError('vault.mount', 'must be a mount path such as "transit"');
  const timeout = duration(vault.timeout, 'vault.timeout', DEFAULTS.vaultTimeout);
  const signTimeout = duration(vault.sign_timeout, 'vault.sign_timeout', DEFAULTS.signTimeout);
  if (timeout < 1) throw new ConfigError('vault.timeout', 'must be at least 1s');
  if (signTimeout < 1) throw new ConfigError('vault.sign_timeout', 'must be at least 1s');

  const jwks = object(root.jwks, 'jwks');
  onlyKnown(jwks, 'jwks', ['max_age']);
  const jwksMaxAge = duration(jwks.max_age, 'jwks.max_age', DEFAULTS.jwksMaxAge);
  const refreshInterval = duration(root.refresh_interval, 'refresh_interval', DEFAULTS.refreshInterval);
  if (refreshInterval < 1) throw new ConfigError('refresh_interval', 'must be at least 1s');
  const clockSkew = duration(root.clock_skew, 'clock_skew', DEFAULTS.clockSkew);

  const keysRequired = options.keysRequired ?? true;
  if (root.keys !== undefined && !Array.isArray(root.keys)) throw new ConfigError('keys', 'must be a list of Transit keys');
  if (keysRequired && (!Array.isArray(root.keys) || root.keys.length === 0)) throw new ConfigError('keys', 'must list at least one Transit key');
  const keys = ((root.keys ?? []) as unknown[]).map((k, i) => parseKey(k, i, { jwksMaxAge, refreshInterval, clockSkew }));
  keys.forEach((k, i) => {
    if (k.callers && !callers) throw new ConfigError(`keys[${i}].callers`, 'names callers, which needs caller authentication (callers.tokens_file)');
  });
  const seen = new Set<string>();
  keys.forEach((k, i) => {
    if (seen.has(k.name)) throw new ConfigError(`keys[${i}].name`, `key "${k.name}" is configured twice`);
    seen.add(k.name);
  });
  const staticKeys = parseStaticKeys(root.static_keys, keys);
  checkLegacyKids(keys, staticKeys);
  const defaultKey = string(root.default_key, 'default_key') ?? keys[0]?.name ?? '';
  if (keys.length > 0 && !seen.has(defaultKey)) throw new ConfigError('default_key', `"${defaultKey}" is not one of the configured keys`);

  let bodyLimit: number = DEFAULTS.bodyLimit;
  if (root.body_limit !== undefined) {
    if (typeof root.body_limit !== 'number' || !Number.isSafeInteger(root.body_limit) || root.body_limit < 256) {
      throw new ConfigError('body_limit', 'must be a number of bytes, at least 256');
    }
    bodyLimit = root.body_limit;
  }
  const batching = parseBatching(root.batching);
  const logLevel = env.SIGNET_LOG_LEVEL || string(root.log_level, 'log_level') || DEFAULTS.logLevel;
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ConfigError('log_level', 'must be one of fatal, error, warn, info, debug, trace, silent');
  }

  return {
    listen,
    vault: {
      address: address.replace(/\/+$/, ''),
      mount,
      namespace: env.VAULT_NAMESPACE || string(vault.namespace, 'vault.namespace'),
      caCert: env.VAULT_CACERT || string(vault.ca_cert, 'vault.ca_cert'),
      clientCert: env.VAULT_CLIENT_CERT || string(vault.client_cert, 'vault.client_cert'),
      clientKey: env.VAULT_CLIENT_KEY || string(vault.client_key, 'vault.client_key'),
      skipVerify: boolEnv(env.VAULT_SKIP_VERIFY, 'VAULT_SKIP_VERIFY'),
      timeout,
      signTimeout,
      auth: parseAuth(vault.auth, env),
    },
    keys,
    defaultKey,
    jwks: { maxAge: jwksMaxAge },
    refreshInterval,
    clockSkew,
    bodyLimit,
    logLevel,
    publicUrl: string(root.public_url, 'public_url'),
    callers,
    allowedHosts: parseAllowedHosts(root.allowed_hosts),
    listenMode,
    listenGroup,
    publicListen,
    batching,
    readiness: parseReadiness(root.readiness),
    staticKeys,
    audit: parseAuditConfig(root.audit),
    kubernetes: parseKubernetes(root.kubernetes, keys, listen),
    vaultApi: parseVaultApi(root.vault_api),
    signBatch: parseSignBatch(root.sign_batch, bodyLimit, batching.maxQueue),
  };
}

/** The configuration document (YAML or JSON) named by --config or SIGNET_CONFIG, parsed but not validated. */
export function readConfigDocument(path: string | undefined, env: Env = process.env): unknown {
  const file = path ?? env.SIGNET_CONFIG;
  let doc: unknown = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError('--config', `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    try {
      doc = parseYaml(text, { uniqueKeys: true });
    } catch (error) {
      // The YAML error names the line and column; it quotes no secret because the file holds none (tokens live
      // in VAULT_TOKEN or token files).
      throw new ConfigError(file, `not valid YAML or JSON: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  return doc;
}

/** Reads the configuration file (YAML or JSON) named by --config or SIGNET_CONFIG, then applies the environment. */
export function loadConfig(path: string | undefined, env: Env = process.env, options: { keysRequired?: boolean } = {}): Config {
  return buildConfig(readConfigDocument(path, env), env, options);
}
