// The sign path behind every door (DESIGN §12): Signet's own POST /v1/sign/:key and the Vault-compatible
// /v1/<mount>/sign/:key are two shapes of this one implementation. It checks the caller against the key's
// rules, signs one token or a batch_input (every item with one key version), and counts metrics; the routes only
// translate the request and the answer. Errors are thrown as SignetErrors; the app's error handler shapes them.

import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import { AuditUnavailableError } from '../audit/auditor.ts';
import { callerName } from '../audit/record.ts';
import { InvalidRequestError, KubernetesKeyError, SignetError, VaultUnavailableError } from '../errors.ts';
import type { Caller } from '../security/callers.ts';
import { authorizeKeyUse } from '../security/callers.ts';
import type { Services } from '../services.ts';
import type { SignRequest, SignResult } from '../signer/signer.ts';

/** 413: a batch_input with more items than sign_batch.max_items. */
export class BatchTooLargeError extends SignetError {
  constructor(items: number, max: number) {
    super(413, 'batch_too_large', `batch_input holds ${items} items; at most ${max} per request (sign_batch.max_items): split it`);
  }
}

/** A sign request body as both APIs accept it: one claim set, or batch_input (top-level ttl/headers are the items' defaults). */
export interface SignBody {
  claims?: Record<string, unknown>;
  ttl?: string | number;
  headers?: { typ?: string };
  batch_input?: Array<SignRequest & { reference?: string }>;
}

/** One item of batch_results: a token, or the error this item alone got (with the status a single sign would have had). */
export type BatchItemResult = (SignResult | { error: string; status: number }) & { reference?: string };

export type SignOutcome =
  | { batch: false; result: SignResult }
  | { batch: true; key: string; results: BatchItemResult[] };

/** The key-name path parameter of every sign and key route. */
export const keyParams = {
  type: 'object', properties: { key: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,128}$' } }, required: ['key'],
} as const;

const typ = { type: 'object', additionalProperties: false, properties: { typ: { type: 'string', pattern: '^[A-Za-z0-9.+/-]{1,64}$' } } } as const;
const ttl = { anyOf: [{ type: 'string', minLength: 1, maxLength: 32 }, { type: 'integer', minimum: 1 }] } as const;

/** The JSON schema of a sign body (claims or batch_input; which one is checked by signCore, with a clear message). */
export const signBodySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    claims: { type: 'object' },
    ttl,
    headers: typ,
    batch_input: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['claims'],
        properties: { claims: { type: 'object' }, ttl, headers: typ, reference: { type: 'string', maxLength: 256 } },
      },
    },
  },
} as const;

const signResultProperties = {
  // A compact JWS is base64url and dots, which JSON never escapes: 'unsafe' skips the serializer's escape scan of
  // each token (about 2 % of Signet's CPU answering callers' batches of 64, measured with --cpu-prof).
  token: { type: 'string', format: 'unsafe' }, kid: { type: 'string' }, alg: { type: 'string' }, key: { type: 'string' },
  key_version: { type: 'integer' }, expires_at: { type: 'integer' },
} as const;

/** The JSON schema of one signed token, and of a batch answer's items (token fields, or error and status). */
export const signResultSchema = {
  type: 'object',
  required: ['token', 'kid', 'alg', 'key', 'key_version', 'expires_at'],
  properties: signResultProperties,
} as const;
export const batchResultsSchema = {
  type: 'array',
  items: { type: 'object', properties: { ...signResultProperties, error: { type: 'string' }, status: { type: 'integer' }, reference: { type: 'string' } } },
} as const;

/**
 * A batch answer as bytes, serialized with the route's response schema. A string answer is measured for its
 * content-length (Buffer.byteLength) and encoded again when it is written; a batch answer is tens of KB (about 450
 * bytes a token), so it is encoded once instead: about 2 % of Signet's CPU answering batches of 64 (--cpu-prof).
 */
export function batchAnswer(reply: FastifyReply, body: unknown): Buffer {
  reply.type('application/json; charset=utf-8');
  // The route's response schema serializer (fast-json-stringify) returns a string.
  return Buffer.from(reply.serialize(body) as string);
}

export function outcomeOf(error: unknown): string {
  if (error instanceof AuditUnavailableError) return 'audit_error';
  if (error instanceof SignetError) return error.status >= 500 ? 'vault_error' : error.status === 403 ? 'refused' : 'invalid';
  return 'error';
}

/** What a sign route passes in: the request's id (for the audit record), caller, body and logger. */
export interface SignContext {
  requestId: string;
  caller: Caller | null;
  body: SignBody;
  log: FastifyBaseLogger;
  /** For headers that go with an error (Retry-After of an audit refusal). */
  reply: FastifyReply;
}

export type SignCore = (name: string, context: SignContext) => Promise<SignOutcome>;

/**
 * The sign path shared by both APIs. Metrics: signet_sign_requests_total counts every token asked for (each
 * batch item with its own outcome; a request refused as a whole once), signet_sign_duration_seconds every request.
 */
export function createSignCore(services: Services): SignCore {
  const { signer, metrics, config, audit } = services;
  const configured = new Set(config.keys.map((k) => k.name));
  const keyConfigs = new Map(config.keys.map((k) => [k.name, k]));
  const maxItems = config.signBatch.maxItems;
  // A cluster's key signs only what its kube-apiserver asks for over the ExternalJWTSigner socket: through HTTP
  // it would mint that cluster's service-account tokens for anyone who can reach the sign API.
  const clusterOf = new Map(config.kubernetes.map((c) => [c.key, c.name]));

  /** Checks that refuse the whole request, before any claim is looked at. */
  function admit(name: string, caller: Caller | null): void {
    const cluster = clusterOf.get(name);
    if (cluster !== undefined) {
      throw new KubernetesKeyError(`key "${name}" signs only for kubernetes cluster "${cluster}" (through its ExternalJWTSigner socket), not through the HTTP API`);
    }
    authorizeKeyUse(keyConfigs.get(name), caller);
  }

  /**
   * One token's audit record (when auditing is on), awaited before the token is answered: a refusal is recorded
   * too. Resolves with the item as it may be answered: the token, or the refusal (or AuditUnavailableError when
   * the record could not be written, fail closed).
   */
  async function recorded(context: SignContext, name: string, claims: unknown, outcome: SignResult | SignetError): Promise<SignResult | SignetError> {
    const caller = callerName(context.caller);
    const written = outcome instanceof SignetError
      ? audit.signDecision({ requestId: context.requestId, caller, key: name, claims, error: outcome })
      : audit.signDecision({ requestId: context.requestId, caller, key: name, result: outcome });
    if (!written) return outcome;
    try {
      await written;
      return outcome;
    } catch (error) {
      if (error instanceof SignetError) return error;
      throw error;
    }
  }

  return async (name, context) => {
    const { body, log } = context;
    const started = performance.now();
    const label = configured.has(name) ? name : '(unknown)';
    try {
      if (body.batch_input === undefined) {
        if (body.claims === undefined) throw new InvalidRequestError('body: missing required field "claims"');
        let result: SignResult;
        try {
          admit(name, context.caller);
          result = await signer.sign(name, body as SignRequest);
        } catch (error) {
          // A refusal is recorded too, and answered only once its record is written (or it fails closed).
          await audit.signDecision({ requestId: context.requestId, caller: callerName(context.caller), key: name, claims: body.claims, error });
          throw error;
        }
        // The token leaves only after its audit record is written (when auditing is on).
        const written = audit.signDecision({ requestId: context.requestId, caller: callerName(context.caller), key: name, result });
        if (written) await written;
        metrics.signRequests.inc({ key: label, outcome: 'ok' });
        return { batch: false, result };
      }
      if (body.claims !== undefined) throw new InvalidRequestError('body: send either "claims" or "batch_input", not both');
      const items = body.batch_input;
      if (items.length > maxItems) throw new BatchTooLargeError(items.length, maxItems);
      try {
        admit(name, context.caller);
      } catch (error) {
        // Refused as a whole: one record, as for a single sign.
        await audit.signDecision({ requestId: context.requestId, caller: callerName(context.caller), key: name, claims: undefined, error });
        throw error;
      }
      // The items are sign requests as they are, unless the body sets defaults for them (a copy per item otherwise).
      const requests: readonly SignRequest[] = body.ttl === undefined && body.headers === undefined
        ? items
        : items.map((item) => ({ claims: item.claims, ttl: item.ttl ?? body.ttl, headers: item.headers ?? body.headers }));
      // Every item is one decision with its own audit record, written before any token of the batch leaves.
      const decided = await signer.signBatch(name, requests);
      const signed = audit.enabled ? await Promise.all(decided.map((r, i) => recorded(context, name, requests[i]!.claims, r))) : decided;
      const refused: Record<string, number> = {};
      // Counted per outcome once per request, not per item (a label lookup each: measurable at 64 items).
      const outcomes = new Map<string, number>();
      const results = signed.map((r, i): BatchItemResult => {
        const reference = items[i]!.reference;
        const outcome = r instanceof SignetError ? outcomeOf(r) : 'ok';
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        if (r instanceof VaultUnavailableError && (r.reason === 'circuit_open' || r.reason === 'overloaded')) metrics.shedRequests.inc({ reason: r.reason });
        if (r instanceof SignetError) refused[r.code] = (refused[r.code] ?? 0) + 1;
        const item: BatchItemResult = r instanceof SignetError ? { error: r.message, status: r.status } : r;
        return reference === undefined ? item : { ...item, reference };
      });
      for (const [outcome, count] of outcomes) metrics.signRequests.inc({ key: label, outcome }, count);
      // Like a refused single sign (the error handler's line): codes and counts, never a claim value.
      if (Object.keys(refused).length > 0) {
        const vaultSide = signed.some((r) => r instanceof SignetError && r.status >= 500);
        log[vaultSide ? 'warn' : 'info']({ event: 'batch_items_refused', key: label, items: items.length, refused }, 'batch items refused');
      }
      return { batch: true, key: name, results };
    } catch (error) {
      metrics.signRequests.inc({ key: label, outcome: outcomeOf(error) });
      if (error instanceof VaultUnavailableError && (error.reason === 'circuit_open' || error.reason === 'overloaded')) {
        metrics.shedRequests.inc({ reason: error.reason });
      }
      if (error instanceof AuditUnavailableError) context.reply.header('retry-after', String(error.retryAfterSeconds));
      throw error;
    } finally {
      metrics.signDuration.observe({ key: label }, (performance.now() - started) / 1000);
    }
  };
}
