// GET /.well-known/jwks.json (and /v1/jwks), GET /.well-known/openid-configuration.
// The JWKS is served from the last good key state, so it keeps answering while Vault is away.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { VaultUnavailableError } from '../errors.ts';
import { isSymmetric } from '../jwt/algorithms.ts';
import type { Services } from '../services.ts';
import { errorResponses } from './schemas.ts';

const jwkSchema = {
  type: 'object',
  additionalProperties: true,
  required: ['kty', 'kid', 'alg', 'use'],
  properties: { kty: { type: 'string' }, kid: { type: 'string' }, alg: { type: 'string' }, use: { type: 'string' } },
} as const;

export default async function jwksRoutes(app: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const { keyring, config } = services;
  const cacheControl = `public, max-age=${config.jwks.maxAge}`;

  function jwks(request: FastifyRequest, reply: FastifyReply) {
    if (config.keys.every((k) => !keyring.has(k.name))) {
      throw new VaultUnavailableError('read_key', 'no key state loaded from Vault yet; see /readyz and the logs', 2, 'not_loaded');
    }
    const { body, etag } = keyring.jwks();
    reply.header('cache-control', cacheControl).header('etag', etag);
    const match = request.headers['if-none-match'];
    if (typeof match === 'string' && match.split(',').some((t) => t.trim().replace(/^W\//, '') === etag)) {
      return reply.code(304).send();
    }
    // Pre-serialised once per key state; a string body is sent as it is.
    return reply.type('application/json; charset=utf-8').send(body);
  }
  const schema = {
    response: {
      200: { type: 'object', required: ['keys'], properties: { keys: { type: 'array', items: jwkSchema } } },
      ...errorResponses,
    },
  };
  app.get('/.well-known/jwks.json', { schema }, jwks);
  app.get('/v1/jwks', { schema }, jwks);

  // Verifiers elsewhere fetch the JWKS from the public listener when there is one; public_url names it exactly.
  const base = config.publicUrl
    ?? (config.publicListen ? `http://${config.publicListen}`
      : config.listen.startsWith('unix:') ? 'http://localhost' : `http://${config.listen}`);
  app.get('/.well-known/openid-configuration', {
    schema: {
      response: {
        200: {
          type: 'object',
          required: ['issuer', 'jwks_uri', 'id_token_signing_alg_values_supported'],
          properties: {
            issuer: { type: 'string' },
            jwks_uri: { type: 'string' },
            id_token_signing_alg_values_supported: { type: 'array', items: { type: 'string' } },
          },
        },
      },
    },
  }, async (_request, reply) => {
    const defaultKey = config.keys.find((k) => k.name === config.defaultKey)!;
    const algs = new Set<string>();
    for (const view of keyring.views()) if (!isSymmetric(view.type)) algs.add(view.alg);
    reply.header('cache-control', cacheControl);
    return {
      issuer: defaultKey.issuer,
      jwks_uri: `${base.replace(/\/$/, '')}/.well-known/jwks.json`,
      id_token_signing_alg_values_supported: [...algs],
    };
  });
}
