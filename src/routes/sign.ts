// POST /v1/sign/:key and POST /v1/sign (the default key), and the Vault-compatible sign routes (vault-api.ts):
// both shapes over one sign path (sign-core.ts), under the same event-loop protection.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DEFAULT_EVENT_LOOP_GUARD, eventLoopGuard } from './event-loop-guard.ts';
import type { Services } from '../services.ts';
import { errorResponses } from './schemas.ts';
import { batchAnswer, batchResultsSchema, createSignCore, keyParams, signBodySchema, signResultSchema, type SignBody, type SignContext, type SignOutcome } from './sign-core.ts';
import { vaultSignRoutes } from './vault-api.ts';

const response = {
  // One token ({token, kid, …}) or, for batch_input, {key, batch_results: [...]} in the order of the items.
  200: {
    type: 'object',
    properties: { ...signResultSchema.properties, batch_results: batchResultsSchema },
  },
  ...errorResponses,
} as const;

function signetShape(reply: FastifyReply, outcome: SignOutcome) {
  return outcome.batch ? batchAnswer(reply, { key: outcome.key, batch_results: outcome.results }) : outcome.result;
}

export default async function signRoutes(app: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const { metrics, config } = services;
  const core = createSignCore(services);

  // Event-loop protection for the sign routes only (this plugin's context): see event-loop-guard.ts.
  await eventLoopGuard(app, { ...DEFAULT_EVENT_LOOP_GUARD, onShed: () => metrics.shedRequests.inc({ reason: 'event_loop' }) });

  const context = (request: FastifyRequest, reply: FastifyReply): SignContext =>
    ({ requestId: request.id, caller: request.caller, body: request.body as SignBody, log: request.log, reply });
  app.post('/v1/sign/:key', { schema: { body: signBodySchema, params: keyParams, response } }, async (request, reply) =>
    signetShape(reply, await core((request.params as { key: string }).key, context(request, reply))));
  app.post('/v1/sign', { schema: { body: signBodySchema, response } }, async (request, reply) =>
    signetShape(reply, await core(config.defaultKey, context(request, reply))));

  if (config.vaultApi) await app.register(vaultSignRoutes, { services, core, mount: config.vaultApi.mount });
}
