// Audit records (no I/O): one JSON line per sign decision, issued or refused. A record names who asked (caller),
// with which key and version, and what the token was (jti, iat, exp, aud, the claim NAMES, an HMAC-SHA-256 of
// sub under the operator's secret), never the token, its signature, a claim value, a Vault token or a caller
// token. The same functions read records back for `signet audit find`.

import { createHmac, type KeyObject } from 'node:crypto';
import { SignetError } from '../errors.ts';

export type AuditOutcome = 'issued' | 'refused' | 'invalid' | 'unavailable' | 'error';

export interface AuditRecord {
  /** Always "audit": marks the line apart from the operational log when both go to stdout. */
  type: 'audit';
  /** RFC 3339 with milliseconds, UTC. */
  time: string;
  request_id: string;
  /** The caller's name from callers.tokens_file, "(unnamed)" for a token without a name, "local" without caller authentication. */
  caller: string;
  key: string;
  key_version?: number;
  kid?: string;
  alg?: string;
  jti?: string;
  iat?: number;
  exp?: number;
  aud?: string | string[];
  /** Names of the token's claims (issued) or of the requested claims (refused); never their values. */
  claims: string[];
  /** Hex HMAC-SHA-256 of `sub` under audit.subject_key_file. */
  sub_hmac?: string;
  outcome: AuditOutcome;
  /** HTTP status of the decision (200 when issued). */
  status: number;
  /** For a refusal: the rule (Signet's error code, e.g. claim_policy, caller_policy, vault_unavailable). */
  rule?: string;
  /** For a refusal: Signet's message, which names claims and rules, never values. */
  reason?: string;
}

/** The outcome of a sign, as the sign routes and their metrics see it. */
export interface SignedToken {
  token: string;
  kid: string;
  alg: string;
  key: string;
  key_version: number;
  /** The payload as signed, when the signer has it: saves decoding it again from the token. */
  claims?: Readonly<Record<string, unknown>>;
}

/** One sign decision, as a sign path reports it (per token, so per item of a batch). */
export interface SignDecision {
  requestId: string;
  /** The resolved caller name (see callerName). */
  caller: string;
  key: string;
  /** The requested claims (used for a refusal, where no token exists). */
  claims?: unknown;
  /** The issued token; absent for a refusal. */
  result?: SignedToken;
  /** Why it was refused; absent when issued. */
  error?: unknown;
}

export const MAX_NAMES = 64;
const MAX_NAME_LENGTH = 128;
const MAX_AUD = 16;
const MAX_AUD_LENGTH = 256;

/** The caller's name in records: "local" without caller authentication (request.caller is null). */
export function callerName(caller: { name?: string } | null | undefined): string {
  if (!caller) return 'local';
  return caller.name ?? '(unnamed)';
}

/** Pass a KeyObject on hot paths: createHmac with a Buffer key costs several times more (OpenSSL key set-up per call). */
export function subjectHmac(secret: KeyObject | Buffer, sub: string): string {
  return createHmac('sha256', secret).update(sub, 'utf8').digest('hex');
}

export type SubjectHasher = (sub: string) => string;

/**
 * subjectHmac under one secret, remembering the last `size` subjects (a service signs for the same subjects
 * again and again; an HMAC costs about 10 us). The memory is cleared whole when full.
 */
export function subjectHasher(secret: KeyObject | Buffer, size = 4096): SubjectHasher {
  const memory = new Map<string, string>();
  return (sub) => {
    let hash = memory.get(sub);
    if (hash === undefined) {
      hash = subjectHmac(secret, sub);
      if (memory.size >= size) memory.clear();
      memory.set(sub, hash);
    }
    return hash;
  };
}

// Many records share a millisecond under load: format each millisecond once.
let lastMs = Number.NaN;
let lastIso = '';
function isoTime(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

function audOf(value: unknown): string | string[] | undefined {
  if (typeof value === 'string') return value.slice(0, MAX_AUD_LENGTH);
  if (Array.isArray(value)) {
    const list = value.filter((v): v is string => typeof v === 'string').slice(0, MAX_AUD).map((v) => v.slice(0, MAX_AUD_LENGTH));
    return list.length > 0 ? list : undefined;
  }
  return undefined;
}

function namesOf(claims: Record<string, unknown>): string[] {
  return Object.keys(claims).slice(0, MAX_NAMES).map((n) => n.slice(0, MAX_NAME_LENGTH));
}

const int = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v.slice(0, 256) : undefined);

/** The payload of a compact JWS Signet produced (its own output: well-formed by construction). */
function payloadOf(token: string): Record<string, unknown> {
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  return JSON.parse(Buffer.from(token.slice(first + 1, second), 'base64url').toString('utf8')) as Record<string, unknown>;
}

export function outcomeOfError(error: unknown): { outcome: AuditOutcome; status: number; rule: string; reason?: string } {
  if (error instanceof SignetError) {
    const outcome: AuditOutcome = error.status >= 500 ? 'unavailable' : error.status === 403 ? 'refused' : 'invalid';
    return { outcome, status: error.status, rule: error.code, reason: error.message.slice(0, 512) };
  }
  // Not Signet's own error: its message is not known to be free of values, so it is not recorded.
  return { outcome: 'error', status: 500, rule: 'internal' };
}

/** The record of one decision. `now` is milliseconds since the epoch. */
export function buildRecord(decision: SignDecision, hashSubject: SubjectHasher, now: number): AuditRecord {
  const base = { type: 'audit' as const, time: isoTime(now), request_id: decision.requestId, caller: decision.caller, key: decision.key };
  if (decision.result) {
    const r = decision.result;
    const payload = r.claims ?? payloadOf(r.token);
    const sub = payload.sub;
    return {
      ...base,
      key_version: r.key_version,
      kid: r.kid,
      alg: r.alg,
      jti: str(payload.jti),
      iat: int(payload.iat),
      exp: int(payload.exp),
      aud: audOf(payload.aud),
      claims: namesOf(payload),
      sub_hmac: typeof sub === 'string' ? hashSubject(sub) : undefined,
      outcome: 'issued',
      status: 200,
    };
  }
  const claims = decision.claims !== null && typeof decision.claims === 'object' && !Array.isArray(decision.claims)
    ? decision.claims as Record<string, unknown>
    : {};
  const sub = claims.sub;
  return {
    ...base,
    jti: str(claims.jti),
    aud: audOf(claims.aud),
    claims: namesOf(claims),
    sub_hmac: typeof sub === 'string' ? hashSubject(sub) : undefined,
    ...outcomeOfError(decision.error),
  };
}

/** One line of an audit file. */
export function serializeRecord(record: AuditRecord): string {
  return `${JSON.stringify(record)}\n`;
}

/** A line read back; undefined when it is not an audit record (a fragment left by a failed write, a log line). */
export function parseRecord(line: string): AuditRecord | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value = JSON.parse(line) as Partial<AuditRecord>;
    if (value?.type !== 'audit' || typeof value.time !== 'string' || typeof value.key !== 'string') return undefined;
    return value as AuditRecord;
  } catch {
    return undefined;
  }
}

export interface AuditFilter {
  jti?: string;
  caller?: string;
  key?: string;
  kid?: string;
  /** HMAC of the subject (subjectHmac of the --sub value). */
  subHmac?: string;
  outcome?: string;
  /** Milliseconds since the epoch, inclusive. */
  since?: number;
  /** Milliseconds since the epoch, exclusive. */
  until?: number;
}

export function matches(record: AuditRecord, filter: AuditFilter): boolean {
  if (filter.jti !== undefined && record.jti !== filter.jti) return false;
  if (filter.caller !== undefined && record.caller !== filter.caller) return false;
  if (filter.key !== undefined && record.key !== filter.key) return false;
  if (filter.kid !== undefined && record.kid !== filter.kid) return false;
  if (filter.subHmac !== undefined && record.sub_hmac !== filter.subHmac) return false;
  if (filter.outcome !== undefined && record.outcome !== filter.outcome) return false;
  if (filter.since !== undefined || filter.until !== undefined) {
    const time = Date.parse(record.time);
    if (filter.since !== undefined && !(time >= filter.since)) return false;
    if (filter.until !== undefined && !(time < filter.until)) return false;
  }
  return true;
}
