// The Vault-compatible endpoint (issue 14): an application that already talks to Vault (the vault CLI, hvac,
// Vault's Go api package, node-vault…) signs through Signet by pointing VAULT_ADDR at it, as it would with a
// Vault JWT-signing plugin mounted at `vault_api.mount` (default jwt):
//   PUT/POST /v1/<mount>/sign/:key (and /v1/<mount>/sign, the default key)  → data: {token, kid, alg, …}
//   GET /v1/<mount>/jwks                                                    → data: {keys: [JWK…]}  (public)
//   GET /v1/<mount>/keys/:key, LIST (GET ?list=true) /v1/<mount>/keys       → key state and public keys (PEM)
// in Vault's response envelope; errors in Vault's {"errors": [...]} with Signet's statuses. Signing goes through
// the same sign path as POST /v1/sign/:key (sign-core.ts): same claims policy, limits, metrics and caller rules.
// A caller token may come as X-Vault-Token (security/callers.ts); nothing here reads, forwards or logs that header.

import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { errorCodes, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { UnknownKeyError, VaultUnavailableError } from '../errors.ts';
import { isPublished } from '../keys/schedule.ts';
import type { Services } from '../services.ts';
import { describeKey } from './keys.ts';
import { errorResponses } from './schemas.ts';
import { batchAnswer, batchResultsSchema, keyParams, signBodySchema, signResultSchema, type SignBody, type SignCore, type SignOutcome } from './sign-core.ts';

/**
 * Vault answers `Content-Type: application/json` exactly, and some clients compare it so: hvac reads the
 * `errors` of a refusal only then. Applied to every answer of these routes, errors and entrance refusals included.
 */
function vaultContentType(app: FastifyInstance): void {
  app.addHook('onSend', async (_request, reply, payload) => {
    if (String(reply.getHeader('content-type') ?? '').startsWith('application/json')) reply.header('content-type', 'application/json');
    return payload;
  });
}

/** Vault's response envelope around `data`. */
export function envelope(requestId: string, data: unknown) {
  return {
    request_id: requestId, lease_id: '', renewable: false, lease_duration: 0, data, wrap_info: null, warnings: null, auth: null,
  };
}

const envelopeSchema = (data: object) => ({
  type: 'object',
  properties: {
    request_id: { type: 'string' }, lease_id: { type: 'string' }, renewable: { type: 'boolean' }, lease_duration: { type: 'integer' },
    data, wrap_info: { type: 'null' }, warnings: { type: 'null' }, auth: { type: 'null' },
  },
});

function dataOf(outcome: SignOutcome) {
  return outcome.batch ? { key: outcome.key, batch_results: outcome.results } : outcome.result;
}

/**
 * The sign routes, registered inside the sign plugin (so its event-loop protection applies). `vault write` sends
 * PUT without a Content-Type: a PUT with none is read as JSON here. A browser cannot send a cross-origin PUT
 * without a CORS preflight, which Signet never grants, so this opens nothing to web pages; POST still needs
 * application/json, as on Signet's own routes.
 */
export async function vaultSignRoutes(app: FastifyInstance, { services, core, mount }: { services: Services; core: SignCore; mount: string }): Promise<void> {
  vaultContentType(app);
  const json = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('*', { parseAs: 'string' }, (request, body, done) => {
    if (request.method === 'PUT' && request.headers['content-type'] === undefined) {
      json(request, body as string, done);
      return;
    }
    done(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE(), undefined);
  });

  const schema = {
    body: signBodySchema,
    response: {
      200: envelopeSchema({ type: 'object', properties: { ...signResultSchema.properties, batch_results: batchResultsSchema } }),
      ...errorResponses,
    },
  };
  const sign = async (name: string, request: FastifyRequest, reply: FastifyReply) => {
    const outcome = await core(name, { requestId: request.id, caller: request.caller, body: request.body as SignBody, log: request.log, reply });
    const answer = envelope(request.id, dataOf(outcome));
    return outcome.batch ? batchAnswer(reply, answer) : answer;
  };
  app.route({
    method: ['PUT', 'POST'], url: `/v1/${mount}/sign/:key`, schema: { ...schema, params: keyParams },
    handler: (request, reply) => sign((request.params as { key: string }).key, request, reply),
  });
  app.route({
    method: ['PUT', 'POST'], url: `/v1/${mount}/sign`, schema,
    handler: (request, reply) => sign(services.config.defaultKey, request, reply),
  });
}

/** The read routes (JWKS, keys): outside the sign plugin, so they keep answering when signs are shed. */
export default async function vaultReadRoutes(app: FastifyInstance, { services, mount }: { services: Services; mount: string }): Promise<void> {
  const { keyring, config } = services;
  vaultContentType(app);

  app.get(`/v1/${mount}/jwks`, async (request: FastifyRequest, reply: FastifyReply) => {
    if (config.keys.every((k) => !keyring.has(k.name))) {
      throw new VaultUnavailableError('read_key', 'no key state loaded from Vault yet; see /readyz and the logs', 2, 'not_loaded');
    }
    // The JWKS document is pre-serialised once per key state; the envelope is put around it as text.
    const { body } = keyring.jwks();
    const head = JSON.stringify(envelope(request.id, null)).replace(/"data":null/, `"data":${body}`);
    reply.header('cache-control', `public, max-age=${config.jwks.maxAge}`);
    return reply.type('application/json').send(head);
  });

  // `vault list <mount>/keys` sends GET ?list=true (hvac: ?list=True).
  app.get(`/v1/${mount}/keys`, {
    schema: {
      querystring: { type: 'object', properties: { list: { type: 'string', enum: ['true', 'True'] } }, required: ['list'] },
      response: { 200: envelopeSchema({ type: 'object', properties: { keys: { type: 'array', items: { type: 'string' } } } }), ...errorResponses },
    },
  }, async (request) => envelope(request.id, { keys: config.keys.map((k) => k.name) }));

  // `vault read <mount>/keys/NAME`: the key's versions and their state, and the public key (PEM) of every
  // published version, as `vault read transit/keys/NAME` shows them.
  app.get(`/v1/${mount}/keys/:key`, { schema: { params: keyParams } }, async (request, reply) => {
    const name = (request.params as { key: string }).key;
    if (!config.keys.some((k) => k.name === name)) throw new UnknownKeyError(name);
    const view = keyring.view(name);
    if (!view) throw new VaultUnavailableError('read_key', `key "${name}" is not loaded from Vault yet; see /readyz and the logs`, 2, 'not_loaded');
    const described = describeKey(view);
    const publicKeys = Object.fromEntries(view.versions.flatMap((v) => {
      if (!isPublished(v.state) || !v.jwk) return [];
      const pem = createPublicKey({ key: v.jwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
      return [[String(v.version), { kid: v.kid, public_key: pem, state: v.state }]];
    }));
    return reply.send(envelope(request.id, { ...described, keys: publicKeys }));
  });
}
