// GET /metrics: Prometheus text format. Key gauges are computed at scrape time from the keyring.

import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.ts';

export function updateGauges(services: Services): void {
  const { metrics, keyring, config, auth, batcher, refresher } = services;
  const now = Date.now() / 1000;
  for (const k of config.keys) {
    const view = keyring.view(k.name, now);
    metrics.keyLoaded.set({ key: k.name }, view && !refresher.errors.has(k.name) ? 1 : 0);
    metrics.queueLength.set({ key: k.name }, batcher.queued(k.name));
    metrics.callsInFlight.set({ key: k.name }, batcher.inFlight(k.name));
    metrics.callsLimit.set({ key: k.name }, batcher.callLimit(k.name));
    if (!view) continue;
    metrics.signingVersion.set({ key: k.name, alg: view.alg }, view.signing.version);
    metrics.autoRotatePeriod.set({ key: k.name }, view.autoRotatePeriod);
    metrics.publishDelay.set({ key: k.name }, k.publishDelay);
    if (view.signing.createdAt > 0) metrics.signingKeyAge.set({ key: k.name }, now - view.signing.createdAt);
    metrics.keyStateAge.set({ key: k.name }, (Date.now() - view.loadedAt) / 1000);
    if (view.nextChangeAt !== undefined) metrics.nextStateChange.set({ key: k.name }, Math.max(0, view.nextChangeAt - now));
    else metrics.nextStateChange.remove({ key: k.name });
  }
  for (const view of keyring.views(now)) {
    if (!view.legacy) continue;
    const active = view.legacy.alias.state === 'active' ? 1 : 0;
    if (view.legacy.kid !== undefined) metrics.legacyAlias.set({ key: view.name, kind: 'legacy_kid' }, active);
    if (view.legacy.acceptMissingKid) metrics.legacyAlias.set({ key: view.name, kind: 'missing_kid' }, active);
  }
  for (const k of keyring.staticKeys(now)) metrics.legacyAlias.set({ key: k.name, kind: 'static' }, k.active ? 1 : 0);
  metrics.publishedKeys.set(keyring.jwks(now).keyCount);
  const status = auth.status();
  metrics.authenticated.set(status.authenticated ? 1 : 0);
  if (status.ttlSeconds !== undefined) metrics.tokenTtl.set(status.ttlSeconds === Infinity ? -1 : status.ttlSeconds);
}

export default async function metricsRoutes(app: FastifyInstance, { services }: { services: Services }): Promise<void> {
  app.get('/metrics', {
    schema: { response: { 200: { type: 'string' } } },
  }, async (_request, reply) => {
    updateGauges(services);
    const text = await services.metrics.registry.metrics();
    return reply.type(services.metrics.registry.contentType).send(text);
  });
}
