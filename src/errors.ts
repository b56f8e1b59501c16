// Signet's error classes. Every error that reaches a caller is one of these: it carries the HTTP status and a
// message that says what went wrong and, where the caller can act, what to do. Messages never contain secrets
// (tokens, claim values): they name claims and rules, not values.
//
// One class per failure a caller or an operator acts on (as jose does): code compares classes with instanceof. The
// `status` (HTTP) and `code` (logs, audit records' `rule`) of each class are part of Signet's interface and do not
// change. Errors that belong to one layer's logic only are declared there (CallerPolicyError, BatchTooLargeError,
// ImportRefused, AuditUnavailableError); the ones below are met across layers.

/** The base of every error that reaches a caller; never thrown itself. */
export abstract class SignetError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.status = status;
    this.code = code;
  }
}

/** 400: the request is malformed (schema, types, bad duration). */
export class InvalidRequestError extends SignetError {
  constructor(message: string) {
    super(400, 'invalid_request', message);
  }
}

/** 403: the claims policy of the key refuses the request. */
export class ClaimPolicyError extends SignetError {
  constructor(message: string) {
    super(403, 'claim_policy', message);
  }
}

/** 404: the key is not configured in Signet. */
export class UnknownKeyError extends SignetError {
  constructor(key: string) {
    super(404, 'unknown_key', `unknown key "${key}": it is not in this Signet's configuration (see GET /v1/keys)`);
  }
}

/**
 * Why a call could not be served: `unreachable` (no answer: refused, reset, timed out), `unavailable` (Vault
 * answered 5xx/429: sealed, no leader), `refused` (Vault refused Signet's token), `circuit_open` (Vault failed
 * repeatedly; calls fail fast until a probe succeeds), `overloaded` (Signet's own queue is full), `not_loaded`.
 */
export type UnavailableReason = 'unreachable' | 'unavailable' | 'refused' | 'circuit_open' | 'overloaded' | 'not_loaded';

/** 503: Vault cannot be reached, is sealed, refuses Signet's token, or the key state is not loaded yet. */
export class VaultUnavailableError extends SignetError {
  readonly retryAfterSeconds: number;
  readonly operation: string;
  readonly reason: UnavailableReason;
  constructor(operation: string, message: string, retryAfterSeconds = 1, reason: UnavailableReason = 'unavailable') {
    super(503, 'vault_unavailable', message);
    this.operation = operation;
    this.retryAfterSeconds = retryAfterSeconds;
    this.reason = reason;
  }
}

/** A Vault answer Signet did not expect (wrong shape, wrong key version): a bug or a misconfigured Vault. */
export class VaultResponseError extends SignetError {
  /** Vault's HTTP status when Vault refused the call (4xx); undefined when its answer had the wrong shape. */
  readonly vaultStatus?: number;
  constructor(message: string, vaultStatus?: number) {
    super(502, 'vault_response', message);
    this.vaultStatus = vaultStatus;
  }
}

/** 401 from /v1/verify: the token is not valid. `reasons` name what failed, never the token's content. */
export class TokenInvalidError extends SignetError {
  readonly reasons: readonly string[];
  constructor(reasons: string | readonly string[]) {
    const list = typeof reasons === 'string' ? [reasons] : reasons;
    super(401, 'token_invalid', list.join('; '));
    this.reasons = list;
  }
}

/** 403: the key signs only for its Kubernetes cluster (kube-apiserver, through the gRPC socket), not over HTTP. */
export class KubernetesKeyError extends SignetError {
  constructor(message: string) {
    super(403, 'kubernetes_key', message);
  }
}

// --- the sign path's Vault answers -----------------------------------------------------------------------------

/**
 * 503: Vault refused the key version Signet chose, because an operator raised min_encryption_version a moment
 * earlier. The signer re-reads the key and signs again with the new version.
 */
export class VersionBelowMinimumError extends SignetError {
  constructor(message: string) {
    super(503, 'version_below_minimum', message);
  }
}

/** 502: Vault refused one item of a batch (its message says why). */
export class VaultItemRefusedError extends SignetError {
  constructor(message: string) {
    super(502, 'vault_item', message);
  }
}

/** 502: Vault answered a batch without a result for an item (a bug, or a Vault that is not what it claims). */
export class VaultItemMissingError extends SignetError {
  constructor(message: string) {
    super(502, 'vault_item', message);
  }
}

// --- keys as Vault holds them: the operator fixes Vault or the configuration ----------------------------------

/** 503: a configured key does not exist in Transit (create it, or fix keys[].name or vault.mount). */
export class KeyMissingError extends SignetError {
  constructor(message: string) {
    super(503, 'key_missing', message);
  }
}

/** 503: a Transit key cannot serve its configuration (derived, a type without the configured alg, not imported). */
export class KeyUnsupportedError extends SignetError {
  constructor(message: string) {
    super(503, 'key_unsupported', message);
  }
}

/** 503: Vault answered the HMAC fingerprint of a key version (its kid) without the HMAC. */
export class HmacFingerprintMissingError extends SignetError {
  constructor(message: string) {
    super(503, 'vault_response', message);
  }
}

// --- Signet's own login to Vault: the operator fixes a file or the auth method ---------------------------------

/** 503: Signet cannot log in to Vault (it keeps retrying, with backoff); the message says what to fix. */
export abstract class AuthError extends SignetError {
  constructor(message: string) {
    super(503, 'auth', message);
  }
}

/** A credential file of vault.auth (token, role_id, secret_id, JWT) cannot be read, or is empty. */
export class AuthFileError extends AuthError {}

/** Vault's login answered without a client_token. */
export class LoginAnswerError extends AuthError {}

// --- operator commands (signet keys …) -------------------------------------------------------------------------

/** 400: --type names no Transit key type that can sign JWTs. */
export class KeyTypeError extends SignetError {
  constructor(message: string) {
    super(400, 'usage', message);
  }
}

/** 403: Vault refused the operator's token for an import; its policy needs deploy/vault/operator-policy.hcl. */
export class OperatorTokenRefusedError extends SignetError {
  constructor(message: string) {
    super(403, 'forbidden', message);
  }
}

/** A configuration error: start-up stops with this message, which names the field. */
export class ConfigError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(`configuration: ${field}: ${message}`);
    this.name = 'ConfigError';
    this.field = field;
  }
}
