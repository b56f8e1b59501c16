// The entrance checks of every request, as one fastify plugin whose hooks apply to the whole app (it is
// registered with skip-override, like fastify-plugin does) while its state stays in this closure:
//   1. the Host header must be loopback or one of allowed_hosts (DNS-rebinding defence), on every route;
//   2. when callers.tokens_file is configured, a caller token on every route except the public ones.
// Both run in onRequest, before the body is read or parsed. Refusals are sent from here, in Vault's error shape
// ({"errors": [...]}), and counted in signet_http_refusals_total{reason}.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { KeyConfig } from '../keys/config.ts';
import type { Services } from '../services.ts';
import { CallerTokens, type Caller, type CallersConfig } from './callers.ts';
import { hostAllowed, isLoopbackListen } from './hosts.ts';

/** What the entrance checks read from the configuration (src/config.ts maps the file onto it). */
export interface SecurityConfig {
  listen: string;
  /** Host names besides loopback that requests may name in their Host header. */
  allowedHosts: readonly string[];
  /** Caller authentication; undefined: none. */
  callers?: CallersConfig;
  /** The keys, for the caller names each allows. */
  keys: ReadonlyArray<Pick<KeyConfig, 'name' | 'callers'>>;
  /** The Vault-compatible endpoint, whose key set is public; undefined: off. */
  vaultApi?: { mount: string };
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; null when caller authentication is not configured (or on public routes). */
    caller: Caller | null;
  }
}

/** Routes anyone who can reach Signet may read: they hold nothing secret and verifiers, probes and Prometheus use them. */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set([
  '/healthz', '/readyz', '/metrics', '/.well-known/jwks.json', '/v1/jwks', '/.well-known/openid-configuration',
]);

function refuse(reply: FastifyReply, status: number, message: string, extra: Record<string, string> = {}): FastifyReply {
  for (const [name, value] of Object.entries(extra)) reply.header(name, value);
  // Sent pre-serialised: a route's own response schema (verify's 401 has another shape) must not apply.
  return reply.code(status).type('application/json; charset=utf-8').send(JSON.stringify({ errors: [message] }));
}

async function securityPlugin(app: FastifyInstance, { config, services }: { config: SecurityConfig; services: Services }): Promise<void> {
  const allowedHosts = new Set(config.allowedHosts);
  const refusals = services.metrics.httpRefusals;
  const log = services.log.child({ component: 'security' });
  // The Vault-compatible endpoint's key set is as public as /v1/jwks.
  const publicRoutes = new Set([...PUBLIC_ROUTES, ...(config.vaultApi ? [`/v1/${config.vaultApi.mount}/jwks`] : [])]);

  let tokens: CallerTokens | undefined;
  if (config.callers) {
    tokens = new CallerTokens(config.callers.tokensFile, services.log);
    tokens.load();
    const names = tokens.names();
    config.keys.forEach((key, index) => {
      for (const name of key.callers ?? []) {
        if (!names.has(name)) {
          log.warn({ event: 'unknown_caller', key: key.name, caller: name }, `keys[${index}].callers names "${name}", which no line of callers.tokens_file has (yet)`);
        }
      }
    });
    tokens.watch();
    app.addHook('onClose', async () => tokens?.close());
  }
  if (!isLoopbackListen(config.listen) && allowedHosts.size === 0) {
    log.warn({ event: 'no_allowed_hosts', listen: config.listen }, 'listening beyond loopback without allowed_hosts: only requests with a loopback Host header are answered');
  }

  app.decorateRequest('caller', null);

  // Callback-style, as every hook on every request (app.ts): an async hook costs a promise and a microtask turn.
  // A refusal sends its answer and does not call done(), which ends the request's hook chain there.
  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    if (!hostAllowed(request.headers.host, allowedHosts)) {
      refusals.inc({ reason: 'host' });
      request.log.info({ event: 'host_refused', host: String(request.headers.host ?? '').slice(0, 100) }, 'request refused: Host not allowed');
      refuse(reply, 403, 'Host header is not a loopback address (127.0.0.1, localhost, [::1]) or one of allowed_hosts (DNS-rebinding defence)');
      return;
    }
    if (!tokens || publicRoutes.has(request.routeOptions.url ?? '')) {
      done();
      return;
    }
    const result = tokens.authenticate(request.headers.authorization, request.headers['x-vault-token']);
    if (!result.ok) {
      refusals.inc({ reason: `caller_${result.reason}` });
      request.log.info({ event: 'caller_refused', reason: result.reason }, 'request refused: caller authentication');
      const challenge = result.reason === 'invalid' ? 'Bearer realm="signet", error="invalid_token"' : 'Bearer realm="signet"';
      refuse(reply, result.status, result.message, result.status === 401 ? { 'www-authenticate': challenge } : { 'retry-after': '5' });
      return;
    }
    request.caller = result.caller;
    if (result.caller.name !== undefined) request.log = request.log.child({ caller: result.caller.name });
    done();
  });
}

// Hooks and the request decoration apply to the whole app, not only to routes registered inside the plugin.
Object.assign(securityPlugin, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'signet-security' });

export default securityPlugin;
