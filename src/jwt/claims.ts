// Claims policy (DESIGN §6): what Signet sets, what a caller may set, and what it refuses. No I/O; the clock
// and the jti come in as arguments so every rule is tested with plain data. Refusals name the claim and the
// rule, never the value (claim values may be personal data).

import { ClaimPolicyError, InvalidRequestError } from '../errors.ts';

/** Claims Signet sets itself. A caller may set one only when the key's configuration lists it. */
export const REGISTERED_BY_SIGNET = ['iss', 'iat', 'nbf', 'exp', 'jti'] as const;
export type SignetClaim = (typeof REGISTERED_BY_SIGNET)[number];

export interface ClaimsPolicy {
  issuer: string;
  /** When set, every `aud` value must be one of these. */
  audiences?: readonly string[];
  /** When set, every `aud` value must match it (whole value). */
  audiencePattern?: RegExp;
  /** When set, `sub` is required and must match it (whole value). */
  subjectPattern?: RegExp;
  /** `aud` must be present (RFC 8725 §3.9: a token without it sidesteps an audience restriction). */
  requireAudience?: boolean;
  defaultTtl: number;
  maxTtl: number;
  /** Claims of REGISTERED_BY_SIGNET a caller is allowed to set. */
  callerMaySet: ReadonlySet<SignetClaim>;
  limits: ClaimLimits;
}

export interface ClaimLimits {
  maxClaims: number;
  maxDepth: number;
  maxStringLength: number;
}

export const DEFAULT_CLAIM_LIMITS: ClaimLimits = { maxClaims: 64, maxDepth: 8, maxStringLength: 4096 };

export interface IssueInput {
  claims: Record<string, unknown>;
  /** Seconds, already parsed; undefined → the key's default_ttl. */
  ttl?: number;
}

export interface IssuedClaims {
  claims: Record<string, unknown>;
  exp: number;
}

function checkShape(value: unknown, path: string, depth: number, limits: ClaimLimits): void {
  if (typeof value === 'string') {
    if (value.length > limits.maxStringLength) {
      throw new InvalidRequestError(`claim ${path}: strings are limited to ${limits.maxStringLength} characters`);
    }
    return;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InvalidRequestError(`claim ${path}: numbers must be finite`);
    return;
  }
  if (value === null || typeof value === 'boolean') return;
  if (depth >= limits.maxDepth) {
    throw new InvalidRequestError(`claim ${path}: nesting is limited to ${limits.maxDepth} levels`);
  }
  if (Array.isArray(value)) {
    value.forEach((item, index) => checkShape(item, `${path}[${index}]`, depth + 1, limits));
    return;
  }
  if (typeof value === 'object') {
    for (const [name, item] of Object.entries(value)) checkShape(item, `${path}.${name}`, depth + 1, limits);
    return;
  }
  throw new InvalidRequestError(`claim ${path}: only JSON values are allowed`);
}

function checkNumericDate(claims: Record<string, unknown>, name: SignetClaim): number | undefined {
  const value = claims[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidRequestError(`claim ${name}: must be a NumericDate (whole seconds since the epoch)`);
  }
  return value;
}

function withoutRegistered(claims: Record<string, unknown>): Record<string, unknown> {
  const { iss: _iss, iat: _iat, nbf: _nbf, exp: _exp, jti: _jti, ...rest } = claims;
  return rest;
}

/**
 * Builds the payload of a token: the caller's claims checked against the policy, plus iss, iat, nbf, exp, jti.
 * `now` is in seconds since the epoch.
 */
export function issueClaims(input: IssueInput, policy: ClaimsPolicy, now: number, newJti: () => string): IssuedClaims {
  const { claims } = input;
  const names = Object.keys(claims);
  if (names.length > policy.limits.maxClaims) {
    throw new InvalidRequestError(`claims: at most ${policy.limits.maxClaims} top-level claims are allowed`);
  }
  for (const name of names) checkShape(claims[name], name, 1, policy.limits);

  let setsRegistered = false;
  for (const name of REGISTERED_BY_SIGNET) {
    if (!Object.hasOwn(claims, name)) continue;
    if (!policy.callerMaySet.has(name)) {
      throw new ClaimPolicyError(
        `claim ${name}: set by Signet; this key's configuration does not let callers set it (keys[].caller_claims)`,
      );
    }
    setsRegistered = true;
  }

  if (Object.hasOwn(claims, 'aud')) {
    const aud = claims.aud;
    const values = Array.isArray(aud) ? aud : [aud];
    if (values.length === 0 || values.some((v) => typeof v !== 'string' || v.length === 0)) {
      throw new InvalidRequestError('claim aud: must be a non-empty string or a non-empty array of strings');
    }
    if (policy.audiences) {
      for (const value of values as string[]) {
        if (!policy.audiences.includes(value)) {
          throw new ClaimPolicyError("claim aud: a value is not in this key's audience allow-list (keys[].audiences)");
        }
      }
    }
    if (policy.audiencePattern) {
      for (const value of values as string[]) {
        if (!policy.audiencePattern.test(value)) {
          throw new ClaimPolicyError("claim aud: a value does not match this key's audience_pattern (keys[].audience_pattern)");
        }
      }
    }
  }
  if (Object.hasOwn(claims, 'sub') && typeof claims.sub !== 'string') {
    throw new InvalidRequestError('claim sub: must be a string');
  }
  if (policy.subjectPattern) {
    if (!Object.hasOwn(claims, 'sub')) {
      throw new ClaimPolicyError('claim sub: required by this key (keys[].subject_pattern)');
    }
    if (!policy.subjectPattern.test(claims.sub as string)) {
      throw new ClaimPolicyError("claim sub: does not match this key's subject_pattern (keys[].subject_pattern)");
    }
  }
  // After the shape checks, so a malformed request is told what is malformed (400) first.
  if (policy.requireAudience && !Object.hasOwn(claims, 'aud')) {
    throw new ClaimPolicyError('claim aud: required by this key (it restricts audiences; keys[].require_audience)');
  }

  const ttl = input.ttl ?? policy.defaultTtl;
  if (ttl <= 0) throw new InvalidRequestError('ttl: must be at least 1 second');

  const iat = checkNumericDate(claims, 'iat') ?? now;
  const nbf = checkNumericDate(claims, 'nbf') ?? now;
  // ttl is capped by max_ttl (DESIGN §6): a caller asking for more gets max_ttl, and sees it in expires_at.
  const latestExp = now + policy.maxTtl;
  const callerExp = checkNumericDate(claims, 'exp');
  if (callerExp !== undefined && callerExp > latestExp) {
    throw new ClaimPolicyError("claim exp: later than now + this key's max_ttl (keys[].max_ttl)");
  }
  const exp = callerExp ?? Math.min(now + ttl, latestExp);
  if (exp <= nbf) throw new ClaimPolicyError('claim exp: must be after nbf');

  let jti = newJti();
  if (Object.hasOwn(claims, 'jti')) {
    if (typeof claims.jti !== 'string' || claims.jti.length === 0) {
      throw new InvalidRequestError('claim jti: must be a non-empty string');
    }
    jti = claims.jti;
  }
  let iss = policy.issuer;
  if (Object.hasOwn(claims, 'iss')) {
    if (typeof claims.iss !== 'string' || claims.iss.length === 0) {
      throw new InvalidRequestError('claim iss: must be a non-empty string');
    }
    iss = claims.iss;
  }

  // The caller's claims between iss and Signet's others. Copied without the five only when the caller set one of
  // them: most requests set none, and the copy was a measurable part of each token's CPU.
  const rest = setsRegistered ? withoutRegistered(claims) : claims;
  return { claims: { iss, ...rest, iat, nbf, exp, jti }, exp };
}

export interface ValidationOptions {
  issuer?: string;
  audience?: string;
  /** The token must carry `aud` (the key requires it when signing). */
  requireAudience?: boolean;
  clockSkew: number;
  /** Seconds since the epoch. */
  now: number;
}

/**
 * Checks the registered claims of a verified token: exp (required), nbf, iat, iss, aud. Returns the list of
 * failures, empty when the claims are valid. Used for every alg, so HS tokens verified through Vault and
 * asymmetric tokens verified locally follow the same rules.
 */
export function validateClaims(claims: Record<string, unknown>, options: ValidationOptions): string[] {
  const errors: string[] = [];
  const { now, clockSkew } = options;
  const { exp, nbf, iat, iss, aud } = claims;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) errors.push('claim exp: missing or not a number');
  else if (exp <= now - clockSkew) errors.push('claim exp: the token has expired');
  if (nbf !== undefined) {
    if (typeof nbf !== 'number' || !Number.isFinite(nbf)) errors.push('claim nbf: not a number');
    else if (nbf > now + clockSkew) errors.push('claim nbf: the token is not valid yet');
  }
  if (iat !== undefined) {
    if (typeof iat !== 'number' || !Number.isFinite(iat)) errors.push('claim iat: not a number');
    else if (iat > now + clockSkew) errors.push('claim iat: issued in the future');
  }
  if (options.issuer !== undefined && iss !== options.issuer) errors.push('claim iss: does not match the expected issuer');
  if (options.requireAudience && aud === undefined) errors.push('claim aud: missing, and this key requires it');
  if (options.audience !== undefined) {
    const values = Array.isArray(aud) ? aud : [aud];
    if (!values.includes(options.audience)) errors.push('claim aud: does not include the expected audience');
  }
  return errors;
}
