// buildApp(config): the fastify app. Routes are plugins that receive the Services; tests drive the app with
// inject() or a real socket. Schema first: every route declares its request and response schemas, and Ajv is
// set to refuse what does not match (fastify's defaults coerce types and strip unknown fields).

import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { SignetError, TokenInvalidError, VaultUnavailableError } from './errors.ts';
import { createLogger, requestLogger } from './observability/logger.ts';
import healthRoutes from './routes/health.ts';
import jwksRoutes from './routes/jwks.ts';
import keysRoutes from './routes/keys.ts';
import metricsRoutes from './routes/metrics.ts';
import signRoutes from './routes/sign.ts';
import vaultReadRoutes from './routes/vault-api.ts';
import verifyRoutes from './routes/verify.ts';
import securityPlugin from './security/plugin.ts';
import { createServices, type ServiceOptions, type Services } from './services.ts';

declare module 'fastify' {
  interface FastifyInstance {
    services: Services;
  }
}

export interface AppDeps extends ServiceOptions {
  logger?: Logger;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The message a validation error gives the caller: where, and which rule. */
function validationMessage(error: FastifyError): string {
  const first = error.validation?.[0];
  if (!first) return error.message;
  const where = `${error.validationContext ?? 'body'}${first.instancePath.replace(/\//g, '.')}`;
  const params = first.params as Record<string, unknown>;
  if (first.keyword === 'additionalProperties') return `${where}: unknown field "${String(params.additionalProperty)}"`;
  if (first.keyword === 'required') return `${where}: missing required field "${String(params.missingProperty)}"`;
  return `${where}: ${first.message ?? 'invalid'}`;
}

/** A fastify instance with Signet's common settings: strict Ajv, request ids, error shape, timeouts. */
function createFastify(config: Config, logger: Logger): FastifyInstance {
  const app: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimit,
    // A stalled client must not hold a connection for ever (fastify's default is no timeout).
    requestTimeout: 30_000,
    connectionTimeout: 60_000,
    return503OnClosing: true,
    // Per-request lines go out at debug level (onResponse below): at info they would cost the hot path.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: (parent, bindings, options) => requestLogger(parent as Logger, bindings, options) as FastifyBaseLogger,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  });
  // Only JSON bodies: a browser page cannot send application/json cross-origin without a preflight.
  app.removeContentTypeParser('text/plain');

  // Hooks on every request are callback-style: an async hook costs a promise and a microtask turn per request.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    done();
  });
  if (logger.isLevelEnabled('debug')) {
    app.addHook('onResponse', (request, reply, done) => {
      request.log.debug({ method: request.method, url: request.routeOptions.url, status: reply.statusCode, ms: reply.elapsedTime }, 'request');
      done();
    });
  }

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation) {
      return reply.code(400).send({ errors: [validationMessage(error)] });
    }
    if (error instanceof TokenInvalidError) {
      return reply.code(401).send({ valid: false, errors: error.reasons });
    }
    if (error instanceof SignetError) {
      if (error instanceof VaultUnavailableError) reply.header('retry-after', String(error.retryAfterSeconds));
      const level = error.status >= 500 ? 'warn' : 'info';
      request.log[level]({ error: { type: error.name, code: error.code, message: error.message }, status: error.status }, 'request failed');
      return reply.code(error.status).send({ errors: [error.message] });
    }
    const status = typeof error.statusCode === 'number' && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) {
      request.log.error({ error: { type: error.name, message: error.message, stack: error.stack } }, 'internal error');
      return reply.code(500).send({ errors: [`internal error (request id ${request.id}); see Signet's log`] });
    }
    const messages: Record<string, string> = {
      FST_ERR_CTP_INVALID_MEDIA_TYPE: 'Content-Type must be application/json',
      FST_ERR_CTP_BODY_TOO_LARGE: `request body is larger than ${config.bodyLimit} bytes (body_limit)`,
      FST_ERR_CTP_EMPTY_JSON_BODY: 'request body is empty; send a JSON object',
      FST_ERR_CTP_INVALID_JSON_BODY: 'request body is not valid JSON',
    };
    const message = messages[error.code] ?? (/JSON/.test(error.message) ? 'request body is not valid JSON' : error.message);
    return reply.code(status).send({ errors: [message] });
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ errors: [`no route ${request.method} ${request.url.split('?')[0]}; see the README's HTTP API`] });
  });

  return app;
}

export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const logger = deps.logger ?? createLogger(config.logLevel);
  const app = createFastify(config, logger);
  const services = createServices(config, logger, deps);
  app.decorate('services', services);

  // Host check (DNS rebinding) and caller authentication, before any route reads a body.
  await app.register(securityPlugin, { config, services });
  await app.register(healthRoutes, { services });
  await app.register(signRoutes, { services });
  await app.register(verifyRoutes, { services });
  await app.register(jwksRoutes, { services });
  await app.register(keysRoutes, { services });
  await app.register(metricsRoutes, { services });
  if (config.vaultApi) await app.register(vaultReadRoutes, { services, mount: config.vaultApi.mount });

  // Draining: a keep-alive connection that was busy when close() began would otherwise stay open until its
  // keep-alive timeout and hold the shutdown; answering with Connection: close ends it after the response.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });

  app.addHook('onReady', async () => {
    await services.start();
  });
  app.addHook('onClose', async () => {
    await services.stop();
  });
  return app;
}

/**
 * The optional public listener (`public_listen`): the JWKS, discovery, health and metrics of a running Signet,
 * read-only and with no way to sign, so that verifiers in other pods, the kubelet and Prometheus can reach them
 * while the signing API stays on loopback. It shares the main app's services and is started and stopped with it.
 */
export async function buildPublicApp(config: Config, services: Services): Promise<FastifyInstance> {
  const app = createFastify(config, services.log);
  app.decorate('services', services);
  await app.register(healthRoutes, { services });
  await app.register(jwksRoutes, { services });
  await app.register(metricsRoutes, { services });
  return app;
}
