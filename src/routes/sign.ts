// POST /v1/sign/:key and POST /v1/sign (the default key).

import underPressure from '@fastify/under-pressure';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AuditUnavailableError } from '../audit/auditor.ts';
import { callerName } from '../audit/record.ts';
import { SignetError, VaultUnavailableError } from '../errors.ts';
import { authorizeKeyUse } from '../security/callers.ts';
import type { Services } from '../services.ts';
import type { SignRequest } from '../signer/signer.ts';
import { errorResponses } from './schemas.ts';

const body = {
  type: 'object',
  additionalProperties: false,
  required: ['claims'],
  properties: {
    claims: { type: 'object' },
    ttl: { anyOf: [{ type: 'string', minLength: 1, maxLength: 32 }, { type: 'integer', minimum: 1 }] },
    headers: {
      type: 'object',
      additionalProperties: false,
      properties: { typ: { type: 'string', pattern: '^[A-Za-z0-9.+/-]{1,64}$' } },
    },
  },
} as const;

const response = {
  200: {
    type: 'object',
    required: ['token', 'kid', 'alg', 'key', 'key_version', 'expires_at'],
    properties: {
      token: { type: 'string' },
      kid: { type: 'string' },
      alg: { type: 'string' },
      key: { type: 'string' },
      key_version: { type: 'integer' },
      expires_at: { type: 'integer' },
    },
  },
  ...errorResponses,
} as const;

export function outcomeOf(error: unknown): string {
  if (error instanceof AuditUnavailableError) return 'audit_error';
  if (error instanceof SignetError) return error.status >= 500 ? 'vault_error' : error.status === 403 ? 'refused' : 'invalid';
  return 'error';
}

export default async function signRoutes(app: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const { signer, metrics, config, audit } = services;
  const configured = new Set(config.keys.map((k) => k.name));
  const keyConfigs = new Map(config.keys.map((k) => [k.name, k]));
  // A cluster's key signs only what its kube-apiserver asks for over the ExternalJWTSigner socket: through HTTP
  // it would mint that cluster's service-account tokens for anyone who can reach the sign API.
  const clusterOf = new Map(config.kubernetes.map((c) => [c.key, c.name]));

  // Event-loop protection for the sign routes only (this plugin's context): when the loop lags, refuse new
  // signs at once rather than queue work that will answer too late. Health, JWKS and metrics keep answering.
  // The limit applies to the mean delay over each 250 ms sample: a sustained lag of 200 ms per turn means every
  // sign already answers hundreds of milliseconds late.
  await app.register(underPressure, {
    maxEventLoopDelay: 200,
    sampleInterval: 250,
    retryAfter: 1,
    exposeStatusRoute: false,
    pressureHandler: (_request, reply, type) => {
      metrics.shedRequests.inc({ reason: 'event_loop' });
      reply.code(503).header('retry-after', '1').send({ errors: [`Signet is overloaded (${type}); retry shortly`] });
    },
  });

  async function handle(name: string, request: FastifyRequest, reply: FastifyReply) {
    const started = performance.now();
    const label = configured.has(name) ? name : '(unknown)';
    const signRequest = request.body as SignRequest;
    try {
      let result;
      try {
        const cluster = clusterOf.get(name);
        if (cluster !== undefined) {
          throw new SignetError(403, 'kubernetes_key', `key "${name}" signs only for kubernetes cluster "${cluster}" (through its ExternalJWTSigner socket), not through the HTTP API`);
        }
        authorizeKeyUse(keyConfigs.get(name), request.caller);
        result = await signer.sign(name, signRequest);
      } catch (error) {
        // A refusal is recorded too, and answered only once its record is written (or it fails closed).
        await audit.signDecision({ requestId: request.id, caller: callerName(request.caller), key: name, claims: signRequest.claims, error });
        throw error;
      }
      // The token leaves only after its audit record is written (when auditing is on).
      const recorded = audit.signDecision({ requestId: request.id, caller: callerName(request.caller), key: name, result });
      if (recorded) await recorded;
      metrics.signRequests.inc({ key: label, outcome: 'ok' });
      return reply.send(result);
    } catch (error) {
      metrics.signRequests.inc({ key: label, outcome: outcomeOf(error) });
      if (error instanceof VaultUnavailableError && (error.reason === 'circuit_open' || error.reason === 'overloaded')) {
        metrics.shedRequests.inc({ reason: error.reason });
      }
      if (error instanceof AuditUnavailableError) reply.header('retry-after', String(error.retryAfterSeconds));
      throw error;
    } finally {
      metrics.signDuration.observe({ key: label }, (performance.now() - started) / 1000);
    }
  }

  app.post('/v1/sign/:key', {
    schema: {
      body,
      params: { type: 'object', properties: { key: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,128}$' } }, required: ['key'] },
      response,
    },
  }, (request, reply) => handle((request.params as { key: string }).key, request, reply));

  app.post('/v1/sign', { schema: { body, response } }, (request, reply) => handle(config.defaultKey, request, reply));
}
