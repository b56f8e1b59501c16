// The ExternalJWTSigner contract as pure functions (no I/O): what a Sign request may carry, the keys FetchKeys
// publishes, when kube-apiserver should fetch them again, and the data timestamp that tells it the set changed.

import type { KeyObject } from 'node:crypto';
import { InvalidRequestError } from '../errors.ts';
import type { KeyView } from '../keys/keyring.ts';
import { isPublished } from '../keys/schedule.ts';

/** Claims larger than this are refused (kube-apiserver's are about 1 KB). */
export const MAX_CLAIMS_LENGTH = 32 * 1024;

/**
 * The shortest refresh hint Signet gives, seconds. A hint is never longer than the time until the key's next
 * state change, so just before a change it would tend to zero; one second keeps kube-apiserver from calling in
 * a tight loop (it polls exactly every hint seconds) while staying well inside any publish delay.
 */
export const REFRESH_HINT_FLOOR_SECONDS = 1;

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * Checks kube-apiserver's claims (the JWT payload, already base64url): canonical unpadded base64url of a JSON
 * object with a numeric `exp` no further than the key's max_ttl (plus clock skew) from now. A token that
 * outlived max_ttl would outlive its key version's publication too (the schedule retires a version max_ttl
 * after it stops signing). The claims are not changed; error messages never quote their values.
 */
export function checkClaims(claims: unknown, now: number, maxTtl: number, clockSkew: number): void {
  if (typeof claims !== 'string' || claims.length === 0) throw new InvalidRequestError('claims: must be a non-empty base64url string');
  if (claims.length > MAX_CLAIMS_LENGTH) throw new InvalidRequestError(`claims: longer than ${MAX_CLAIMS_LENGTH} characters`);
  if (!BASE64URL.test(claims)) throw new InvalidRequestError('claims: not unpadded base64url');
  const bytes = Buffer.from(claims, 'base64url');
  // Node's decoder ignores trailing bits that do not make a byte: only the canonical encoding is accepted.
  if (bytes.toString('base64url') !== claims) throw new InvalidRequestError('claims: not canonical base64url');
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new InvalidRequestError('claims: not UTF-8 JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidRequestError('claims: not a JSON object');
  const exp = (parsed as Record<string, unknown>).exp;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) throw new InvalidRequestError('claims: exp is missing or not a number');
  if (exp > now + maxTtl + clockSkew) {
    throw new InvalidRequestError(`claims: exp is more than the key's max_ttl (${maxTtl}s) away; set kube-apiserver's --service-account-max-token-expiration no higher than max_ttl`);
  }
}

export interface PublishedKey {
  keyId: string;
  /** PKIX (SubjectPublicKeyInfo) DER. */
  key: Buffer;
  excludeFromOidcDiscovery: boolean;
}

const derCache = new WeakMap<KeyObject, Buffer>();

function der(key: KeyObject): Buffer {
  let encoded = derCache.get(key);
  if (!encoded) {
    encoded = key.export({ type: 'spki', format: 'der' });
    derCache.set(key, encoded);
  }
  return encoded;
}

/** Every published version (pending, active, verify-only) in version order, as PKIX DER. */
export function publishedKeys(view: KeyView): PublishedKey[] {
  return view.versions
    .filter((v) => isPublished(v.state) && v.publicKey !== undefined)
    .map((v) => ({ keyId: v.kid, key: der(v.publicKey!), excludeFromOidcDiscovery: false }));
}

/**
 * The static_keys kube-apiserver should also trust: those still published now whose alg it accepts. This is how a
 * cluster moving from its key file to Signet keeps its old service-account tokens valid (the old public key,
 * under kube-apiserver's own kid for it, until the old tokens expire).
 */
export function staticPublishedKeys(statics: ReadonlyArray<{ kid: string; alg: string; publicKey: KeyObject; active: boolean }>, algs: readonly string[]): PublishedKey[] {
  return statics.filter((k) => k.active && algs.includes(k.alg))
    .map((k) => ({ keyId: k.kid, key: der(k.publicKey), excludeFromOidcDiscovery: false }));
}

/**
 * Seconds until kube-apiserver should fetch the keys again: at most `ceiling` (jwks.max_age, which the
 * configuration keeps below publish_delay - refresh_interval - clock_skew, so a version created in Vault is
 * fetched before it signs), at most the time until the key's next state change, at least the floor.
 */
export function refreshHint(view: KeyView, now: number, ceiling: number): number {
  let hint = ceiling;
  if (view.nextChangeAt !== undefined) hint = Math.min(hint, Math.ceil(view.nextChangeAt - now));
  return Math.max(REFRESH_HINT_FLOOR_SECONDS, Math.floor(hint));
}

/**
 * When the published key set last changed (which kids, in which state). kube-apiserver re-reads its keys and
 * updates its OIDC JWKS when this (or the list of kids) changes. A change of states alone that the schedule
 * made (pending → active, at publish_delay) is dated at the previous view's nextChangeAt, the exact moment;
 * a change of kids came from Vault (a rotation, a revocation) and is dated when Signet read it; the first
 * observation is dated when the key was read. Always increasing. Pure: the caller passes each view it serves.
 */
export class KeySetClock {
  #kids: string | undefined;
  #states: string | undefined;
  #previous: KeyView | undefined;
  #changedAt = 0;

  /** Seconds since the epoch of the last change, given the view about to be served at `now` (seconds). */
  observe(view: KeyView, now: number): number {
    const published = view.versions.filter((v) => isPublished(v.state));
    const kids = published.map((v) => v.kid).join(',');
    const states = published.map((v) => v.state).join(',');
    if (kids !== this.#kids || states !== this.#states) {
      const scheduled = this.#previous?.nextChangeAt;
      let changedAt = view.loadedAt / 1000;
      if (this.#kids === kids && scheduled !== undefined && scheduled <= now) changedAt = scheduled;
      this.#changedAt = Math.max(changedAt, this.#changedAt + 0.001);
      this.#kids = kids;
      this.#states = states;
    }
    this.#previous = view;
    return this.#changedAt;
  }
}

/** A protobuf Timestamp from seconds since the epoch. */
export function timestamp(seconds: number): { seconds: number; nanos: number } {
  const whole = Math.floor(seconds);
  return { seconds: whole, nanos: Math.round((seconds - whole) * 1e9) % 1e9 };
}
