// POST /v1/verify: 200 with the verified header and claims, or 401 {"valid": false, "errors": [...]}.

import type { FastifyInstance } from 'fastify';
import { TokenInvalidError } from '../errors.ts';
import { MAX_TOKEN_LENGTH } from '../jwt/parse.ts';
import type { Services } from '../services.ts';
import type { VerifyRequest } from '../verifier/verifier.ts';
import { outcomeOf } from './sign-core.ts';
import { errorResponses } from './schemas.ts';

export default async function verifyRoutes(app: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const { verifier, metrics } = services;
  app.post('/v1/verify', {
    schema: {
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['token'],
        properties: {
          token: { type: 'string', minLength: 1, maxLength: MAX_TOKEN_LENGTH },
          audience: { type: 'string', minLength: 1, maxLength: 1024 },
          issuer: { type: 'string', minLength: 1, maxLength: 1024 },
          key: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,128}$' },
        },
      },
      response: {
        200: {
          type: 'object',
          required: ['valid', 'key', 'key_version', 'kid', 'alg', 'header', 'claims'],
          properties: {
            valid: { type: 'boolean' },
            key: { type: 'string' },
            key_version: { type: 'integer' },
            kid: { type: 'string' },
            alg: { type: 'string' },
            header: { type: 'object', additionalProperties: true },
            claims: { type: 'object', additionalProperties: true },
          },
        },
        401: {
          type: 'object',
          required: ['valid', 'errors'],
          properties: { valid: { type: 'boolean' }, errors: { type: 'array', items: { type: 'string' } } },
        },
        ...errorResponses,
      },
    },
  }, async (request, reply) => {
    const started = performance.now();
    try {
      const result = await verifier.verify(request.body as VerifyRequest);
      metrics.verifyRequests.inc({ outcome: 'valid' });
      if (result.via !== 'kid') metrics.legacyVerifications.inc({ key: result.key, kind: result.via });
      return reply.send(result);
    } catch (error) {
      metrics.verifyRequests.inc({ outcome: error instanceof TokenInvalidError ? 'invalid' : outcomeOf(error) });
      throw error;
    } finally {
      metrics.verifyDuration.observe((performance.now() - started) / 1000);
    }
  });
}
