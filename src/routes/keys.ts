// GET /v1/keys: every configured key, its signing version and the state of each version (no secrets: kids,
// dates and states only).

import type { FastifyInstance } from 'fastify';
import type { KeyView } from '../keys/keyring.ts';
import type { StaticKey } from '../keys/static-keys.ts';
import type { Services } from '../services.ts';

const iso = (seconds: number | undefined): string | null =>
  seconds === undefined || seconds <= 0 ? null : new Date(Math.round(seconds * 1000)).toISOString();

export function describeKey(view: KeyView) {
  return {
    name: view.name,
    type: view.type,
    alg: view.alg,
    loaded: true,
    signing_version: view.signing.version,
    signing_kid: view.signing.kid,
    latest_version: view.latestVersion,
    min_encryption_version: view.minEncryptionVersion,
    min_decryption_version: view.minDecryptionVersion,
    auto_rotate_period: view.autoRotatePeriod,
    publish_delay: view.config.publishDelay,
    max_ttl: view.config.maxTtl,
    next_change_at: iso(view.nextChangeAt),
    next_rotation_at: iso(view.nextRotationAt),
    loaded_at: new Date(view.loadedAt).toISOString(),
    versions: view.versions.map((v) => ({
      version: v.version,
      kid: v.kid,
      created: iso(v.createdAt),
      state: v.state,
      next_change_at: iso(v.nextChangeAt),
    })),
    ...(view.legacy ? {
      legacy: {
        kid: view.legacy.kid ?? null,
        accept_missing_kid: view.legacy.acceptMissingKid,
        version: view.legacy.version,
        state: view.legacy.alias.state,
        until: 'until' in view.legacy.alias ? iso(view.legacy.alias.until) : null,
        ...('error' in view.legacy.alias ? { error: view.legacy.alias.error } : {}),
      },
    } : {}),
  };
}

/** A static key: one verify-only entry with its end date (gone once the date has passed). */
export function describeStaticKey(key: StaticKey & { active: boolean }) {
  return {
    name: key.name,
    type: 'static',
    alg: key.alg,
    loaded: true,
    versions: key.active ? [{ version: 0, kid: key.kid, created: null, state: 'verify-only (static)', next_change_at: iso(key.until) }] : [],
    next_change_at: key.active ? iso(key.until) : null,
  };
}

const nullableString = { type: ['string', 'null'] } as const;

export default async function keysRoutes(app: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const { keyring, refresher, config } = services;
  app.get('/v1/keys', {
    schema: {
      response: {
        200: {
          type: 'object',
          required: ['keys'],
          properties: {
            keys: {
              type: 'array',
              items: {
                type: 'object',
                required: ['name', 'loaded'],
                properties: {
                  name: { type: 'string' }, type: { type: 'string' }, alg: { type: 'string' }, loaded: { type: 'boolean' },
                  error: { type: 'string' },
                  signing_version: { type: 'integer' }, signing_kid: { type: 'string' },
                  latest_version: { type: 'integer' }, min_encryption_version: { type: 'integer' },
                  min_decryption_version: { type: 'integer' }, auto_rotate_period: { type: 'integer' },
                  publish_delay: { type: 'integer' }, max_ttl: { type: 'integer' },
                  next_change_at: nullableString, next_rotation_at: nullableString, loaded_at: { type: 'string' },
                  legacy: {
                    type: 'object',
                    properties: {
                      kid: nullableString, accept_missing_kid: { type: 'boolean' }, version: { type: 'integer' },
                      state: { type: 'string' }, until: nullableString, error: { type: 'string' },
                    },
                  },
                  versions: {
                    type: 'array',
                    items: {
                      type: 'object',
                      properties: {
                        version: { type: 'integer' }, kid: { type: 'string' }, created: nullableString,
                        state: { type: 'string' }, next_change_at: nullableString,
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
  }, async () => {
    const views = new Map(keyring.views().map((v) => [v.name, v]));
    return {
      keys: [
        ...config.keys.map((k) => {
          const view = views.get(k.name);
          const error = refresher.errors.get(k.name);
          if (!view) return { name: k.name, loaded: false, ...(error ? { error } : {}) };
          return { ...describeKey(view), ...(error ? { error } : {}) };
        }),
        ...keyring.staticKeys().map(describeStaticKey),
      ],
    };
  });
}
