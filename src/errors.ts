// Signet's error classes. Every error that reaches a caller is one of these: it carries the HTTP status and a
// message that says what went wrong and, where the caller can act, what to do. Messages never contain secrets
// (tokens, claim values): they name claims and rules, not values.

export class SignetError extends Error {
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

/** A configuration error: start-up stops with this message, which names the field. */
export class ConfigError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(`configuration: ${field}: ${message}`);
    this.name = 'ConfigError';
    this.field = field;
  }
}
