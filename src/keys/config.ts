// What the key layer needs to know about each configured key: src/config.ts maps the configuration file's
// `keys:` and `static_keys:` entries onto these.

import type { JwsAlg } from '../jwt/algorithms.ts';
import type { SignetClaim } from '../jwt/claims.ts';
import type { LegacyConfig } from './legacy.ts';

export interface KeyConfig {
  name: string;
  alg?: JwsAlg;
  issuer: string;
  audiences?: string[];
  /** Whole-value pattern every `aud` must match. */
  audiencePattern?: RegExp;
  /** Whole-value pattern `sub` must match (and `sub` is then required). */
  subjectPattern?: RegExp;
  defaultTtl: number;
  maxTtl: number;
  publishDelay: number;
  callerClaims: SignetClaim[];
  /** Names of the callers (callers.tokens_file) that may sign with this key; undefined: every caller. */
  callers?: string[];
  /**
   * Whether a token must carry `aud`. Default: true when the key restricts audiences (an allow-list or a
   * pattern), since a token without `aud` sidesteps the restriction at any verifier that skips the check
   * (RFC 8725 §3.9).
   */
  requireAudience: boolean;
  /** The `typ` header values this key signs and /v1/verify accepts (RFC 8725 §3.11 explicit typing). */
  allowedTyp: string[];
  /** Old tokens of an imported key (legacy_kid, accept_missing_kid, legacy_until); undefined: none. */
  legacy?: LegacyConfig;
}

/** A `static_keys` entry: a public key only published and verified with, until a date. */
export interface StaticKeyConfig {
  name: string;
  file: string;
  kid?: string;
  alg?: JwsAlg;
  issuer: string;
  /** Seconds since the epoch. */
  until: number;
}

/** What the refresher reads from the configuration: the keys, where they are in Vault, how often to look. */
export interface RefresherConfig {
  keys: readonly KeyConfig[];
  refreshInterval: number;
  vault: { mount: string };
}
