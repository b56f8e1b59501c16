// GET /healthz (the process answers) and GET /readyz (what a sidecar's readiness means: see readiness()).

import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.ts';

/**
 * Readiness of a sidecar is the readiness of its pod: failing it takes the application out of its Service, so
 * it fails only when Signet cannot do its job for a while, not at every Vault blip.
 * - `started`: every key has been loaded from Vault at least once (until then nothing can be signed or verified);
 * - then ready unless Vault has been unusable (unreachable, sealed, refusing Signet's token, circuit open) for
 *   longer than readiness.vault_outage_tolerance. Within the tolerance, signs fail fast with 503 + Retry-After while
 *   the JWKS, discovery and local verification keep serving the last key state.
 * The details (Vault reachability, token, circuit, per-key state) are in the body and in the metrics either way.
 */
export function readiness(services: Services, now = Date.now()) {
  const auth = services.auth.status();
  const vault = services.vaultStatus();
  const keys = Object.fromEntries(services.config.keys.map((k) => [k.name, services.keyring.has(k.name) && !services.refresher.errors.has(k.name)]));
  const started = services.config.keys.every((k) => services.keyring.has(k.name));
  const unusableFor = vault.unusableSince === undefined ? 0 : Math.max(0, (now - vault.unusableSince) / 1000);
  const tolerance = services.config.readiness.vaultOutageTolerance;
  const ready = started && (vault.usable || (tolerance > 0 && unusableFor < tolerance));
  return {
    ready,
    started,
    vault: {
      usable: vault.usable,
      reachable: vault.reachable,
      health: vault.health,
      authenticated: auth.authenticated,
      method: auth.method,
      circuit: services.http.breaker.state,
      unusable_for_seconds: Math.round(unusableFor * 10) / 10,
      outage_tolerance_seconds: tolerance,
    },
    keys,
  };
}

export default async function healthRoutes(app: FastifyInstance, { services }: { services: Services }): Promise<void> {
  app.get('/healthz', {
    schema: { response: { 200: { type: 'object', properties: { status: { type: 'string' } } } } },
  }, async () => ({ status: 'ok' }));

  const readySchema = {
    type: 'object',
    properties: {
      ready: { type: 'boolean' },
      started: { type: 'boolean' },
      vault: {
        type: 'object',
        properties: {
          usable: { type: 'boolean' },
          reachable: { type: 'boolean' },
          health: { type: 'string' },
          authenticated: { type: 'boolean' },
          method: { type: 'string' },
          circuit: { type: 'string' },
          unusable_for_seconds: { type: 'number' },
          outage_tolerance_seconds: { type: 'number' },
        },
      },
      keys: { type: 'object', additionalProperties: { type: 'boolean' } },
    },
  } as const;
  app.get('/readyz', { schema: { response: { 200: readySchema, 503: readySchema } } }, async (_request, reply) => {
    const state = readiness(services);
    return reply.code(state.ready ? 200 : 503).send(state);
  });
}
