// GET /healthz (the process answers) and GET /readyz (Vault accepted Signet's token and every key is loaded).

import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.ts';

export function readiness(services: Services) {
  const auth = services.auth.status();
  const vault = services.vaultStatus();
  const keys = Object.fromEntries(services.config.keys.map((k) => [k.name, services.keyring.has(k.name) && !services.refresher.errors.has(k.name)]));
  const ready = vault.reachable && auth.authenticated && Object.values(keys).every(Boolean);
  return { ready, vault: { reachable: vault.reachable, health: vault.health, authenticated: auth.authenticated, method: auth.method }, keys };
}

export default async function healthRoutes(app: FastifyInstance, { services }: { services: Services }): Promise<void> {
  app.get('/healthz', {
    schema: { response: { 200: { type: 'object', properties: { status: { type: 'string' } } } } },
  }, async () => ({ status: 'ok' }));

  const readySchema = {
    type: 'object',
    properties: {
      ready: { type: 'boolean' },
      vault: {
        type: 'object',
        properties: { reachable: { type: 'boolean' }, health: { type: 'string' }, authenticated: { type: 'boolean' }, method: { type: 'string' } },
      },
      keys: { type: 'object', additionalProperties: { type: 'boolean' } },
    },
  } as const;
  app.get('/readyz', { schema: { response: { 200: readySchema, 503: readySchema } } }, async (_request, reply) => {
    const state = readiness(services);
    return reply.code(state.ready ? 200 : 503).send(state);
  });
}
