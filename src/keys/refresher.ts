// Keeps the keyring in step with Vault: reads every configured key on refresh_interval, and at once
// (rate-limited) when verification meets a kid it does not know. A failed read keeps the last good state:
// the JWKS and local verification go on serving it while Vault is away.

import type { Logger } from 'pino';
import type { RefresherConfig } from './config.ts';
import { HmacFingerprintMissingError, KeyMissingError, KeyUnsupportedError, VaultResponseError } from '../errors.ts';
import { isSymmetric, resolveAlg } from '../jwt/algorithms.ts';
import type { VaultControl } from '../vault/control.ts';
import type { Keyring, LoadedKey } from './keyring.ts';
import { aliasEnd, IMPORTED_VERSION } from './legacy.ts';
import { buildMaterial, HMAC_FINGERPRINT_INPUT, type VersionMaterial } from './material.ts';
import { parseTransitKey } from './transit-key.ts';

export interface RefreshObserver {
  (key: string, outcome: 'ok' | 'error'): void;
}

export class KeyRefresher {
  readonly #config: RefresherConfig;
  readonly #control: VaultControl;
  readonly #keyring: Keyring;
  readonly #log: Logger;
  readonly #observe: RefreshObserver;
  /** Material by key name → "version:createdAt:publicKey" → material, so refreshes re-import nothing. */
  readonly #cache = new Map<string, Map<string, VersionMaterial>>();
  /** HMAC keys: the fingerprint of each version, by key name. */
  readonly #hmacFingerprints = new Map<string, Map<number, string>>();
  /** HMAC versions Vault cannot fingerprint: kids learnt from tokens Vault verified, by key name and version. */
  readonly #learned = new Map<string, Map<number, string>>();
  readonly #unidentifiedLogged = new Map<string, Set<number>>();
  #timer: NodeJS.Timeout | undefined;
  #inflight: Promise<void> | undefined;
  #inflightStartedAt = 0;
  #lastOnDemand = 0;
  #stopped = false;
  /** Last error per key; empty when every key loaded at the last refresh. */
  readonly errors = new Map<string, string>();
  lastSuccessAt = 0;

  constructor(config: RefresherConfig, control: VaultControl, keyring: Keyring, log: Logger, observe: RefreshObserver = () => {}) {
    this.#config = config;
    this.#control = control;
    this.#keyring = keyring;
    this.#log = log.child({ component: 'keys' });
    this.#observe = observe;
  }

  /** First load, then the periodic refresh. Resolves after the first attempt, whether or not it succeeded. */
  async start(): Promise<void> {
    await this.refresh();
    this.#loop();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  #loop(): void {
    if (this.#stopped) return;
    // While a key is missing, retry sooner than the interval (capped at 5 s) so readiness comes quickly. A
    // jitter of up to -20 % keeps a fleet of sidecars started together from reading Vault in lockstep (never
    // later than refresh_interval: the publish delay and the retirement grace count on it).
    const seconds = this.errors.size > 0 ? Math.min(5, this.#config.refreshInterval) : this.#config.refreshInterval;
    const jittered = seconds * 1000 * (0.8 + Math.random() * 0.2);
    this.#timer = setTimeout(() => {
      void this.refresh().finally(() => this.#loop());
    }, jittered);
    this.#timer.unref();
  }

  /** Reads every key from Vault once; concurrent callers share the same read. */
  refresh(): Promise<void> {
    if (!this.#inflight) {
      this.#inflightStartedAt = Date.now();
      this.#inflight = this.#refreshAll().finally(() => {
        this.#inflight = undefined;
      });
    }
    return this.#inflight;
  }

  /**
   * A read that starts no earlier than `since` (ms since the epoch): a read already under way joins only if it
   * started then or later. The signer needs this after Vault refused a version below min_encryption_version: a
   * periodic read that began before the operator's change would hand it the old version again.
   */
  async refreshSince(since: number): Promise<void> {
    if (this.#inflight && this.#inflightStartedAt >= since) return this.#inflight;
    if (this.#inflight) await this.#inflight;
    return this.refresh();
  }

  /**
   * Refresh because a token named an unknown kid (perhaps a version created since the last refresh). Rate-limited
   * so a stream of forged kids cannot turn into a stream of Vault reads. Returns whether a refresh ran.
   */
  async refreshForUnknownKid(): Promise<boolean> {
    const now = Date.now();
    const minGapMs = Math.min(5, this.#config.refreshInterval) * 1000;
    if (this.#inflight) {
      await this.#inflight;
      return true;
    }
    if (now - this.#lastOnDemand < minGapMs) return false;
    this.#lastOnDemand = now;
    await this.refresh();
    return true;
  }

  async #refreshAll(): Promise<void> {
    await Promise.all(this.#config.keys.map(async (keyConfig) => {
      try {
        this.#keyring.update(await this.#load(keyConfig.name));
        if (this.errors.has(keyConfig.name)) this.#log.info({ event: 'key_loaded', key: keyConfig.name }, 'key loaded');
        this.errors.delete(keyConfig.name);
        this.#observe(keyConfig.name, 'ok');
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (this.errors.get(keyConfig.name) !== message) {
          this.#log.error({ event: 'key_load_failed', key: keyConfig.name, err: message }, 'cannot load key from Vault; serving the last good state');
        }
        this.errors.set(keyConfig.name, message);
        this.#observe(keyConfig.name, 'error');
      }
    }));
    if (this.errors.size === 0) this.lastSuccessAt = Date.now();
    // Evaluate the schedule now, so version and alias transitions are logged within a refresh interval even
    // when nothing reads the keys.
    this.#keyring.views();
  }

  async #load(name: string): Promise<LoadedKey> {
    const index = this.#config.keys.findIndex((k) => k.name === name);
    const config = this.#config.keys[index]!;
    let body;
    try {
      body = await this.#control.readTransitKey(name);
    } catch (error) {
      if (error instanceof VaultResponseError && error.vaultStatus === 404) {
        throw new KeyMissingError(`Transit key "${name}" does not exist at ${this.#config.vault.mount}/keys/${name}; create it (npx signet keys create ${name} --type ...)`);
      }
      throw error;
    }
    const transit = parseTransitKey(name, body.data);
    if (transit.derived) throw new KeyUnsupportedError(`Transit key "${name}" is derived; JWT signing needs a non-derived key`);
    const resolved = resolveAlg(transit.type, config.alg);
    if ('error' in resolved) throw new KeyUnsupportedError(`keys[${index}].alg: ${resolved.error}`);
    const { alg } = resolved;
    if (config.legacy) {
      // An alias that cannot be honoured keeps the key unloaded (and /readyz false), so a rollout stops here
      // instead of refusing the old tokens the alias was meant to keep valid.
      const setting = config.legacy.kid !== undefined ? 'legacy_kid' : 'accept_missing_kid';
      // Transit clears imported_key when an imported key rotates, so it only tells while version 1 is the latest.
      if (!transit.imported && transit.latestVersion === IMPORTED_VERSION) {
        throw new KeyUnsupportedError(`keys[${index}].${setting}: Transit key "${name}" was not created by an import (npx signet keys import ${name} ...), so no version of it holds the old key`);
      }
      const imported = transit.versions.find((v) => v.version === IMPORTED_VERSION);
      const end = imported ? aliasEnd(config.legacy.until, imported.createdAt) : 0;
      if (typeof end !== 'number') throw new KeyUnsupportedError(`keys[${index}].${end.error}`);
    }
    const cache = this.#cache.get(name) ?? new Map<string, VersionMaterial>();
    const materials = new Map<number, VersionMaterial>();
    const fresh = new Map<string, VersionMaterial>();
    const symmetric = isSymmetric(transit.type);
    const fingerprints = symmetric ? await this.#fingerprints(name, transit.latestVersion, transit.minEncryptionVersion, transit.versions.map((v) => v.version)) : undefined;
    for (const version of transit.versions) {
      const fingerprint = fingerprints?.get(version.version);
      if (symmetric && fingerprint === undefined) {
        // Below min_encryption_version Vault computes no HMAC, so this version's kid cannot be derived here.
        const kid = this.#learned.get(name)?.get(version.version);
        materials.set(version.version, kid ? { kid } : { kid: `unidentified-v${version.version}`, unidentified: true });
        continue;
      }
      const cacheKey = `${alg}:${version.version}:${version.createdAt}:${version.publicKey ?? fingerprint}`;
      const material = cache.get(cacheKey) ?? await buildMaterial(name, transit.type, alg, version, fingerprint);
      materials.set(version.version, material);
      fresh.set(cacheKey, material);
    }
    this.#cache.set(name, fresh);
    return { config, alg, transit, materials, loadedAt: Date.now() };
  }

  /**
   * The fingerprint of each HMAC version, computed once per version: the newest is fingerprinted on every read
   * (nothing else in Vault's answer changes when an hmac key is deleted and re-created under the same name; a
   * changed fingerprint drops what was known). Versions below min_encryption_version cannot be fingerprinted
   * (Vault refuses the HMAC): they are left out, with one log line each.
   */
  async #fingerprints(name: string, latest: number, minEncryption: number, versions: number[]): Promise<Map<number, string>> {
    let known = this.#hmacFingerprints.get(name) ?? new Map<number, string>();
    const newest = await this.#fingerprint(name, latest);
    if (known.has(latest) && known.get(latest) !== newest) {
      this.#log.warn({ event: 'key_recreated', key: name }, `HMAC key "${name}" was re-created in Vault: its versions get new kids`);
      known = new Map();
      this.#learned.delete(name);
    }
    known.set(latest, newest);
    for (const version of versions) {
      if (known.has(version)) continue;
      if (minEncryption > 0 && version < minEncryption) {
        const logged = this.#unidentifiedLogged.get(name) ?? new Set<number>();
        if (!logged.has(version)) {
          logged.add(version);
          this.#unidentifiedLogged.set(name, logged);
          this.#log.info({ event: 'hmac_version_unidentified', key: name, version }, `HMAC key "${name}" version ${version} is below `
            + 'min_encryption_version, so Vault will not compute its fingerprint (its kid) here: it only verifies, and its kid is '
            + 'learnt from the first token of it that Vault verifies');
        }
        continue;
      }
      known.set(version, await this.#fingerprint(name, version));
    }
    this.#hmacFingerprints.set(name, known);
    return known;
  }

  /** Vault verified a token with `kid` under `version` of an HMAC key whose kid was unknown: remember it. */
  learnKid(name: string, version: number, kid: string): void {
    const learned = this.#learned.get(name) ?? new Map<number, string>();
    if (learned.get(version) === kid) return;
    learned.set(version, kid);
    this.#learned.set(name, learned);
    this.#log.info({ event: 'hmac_kid_learnt', key: name, version, kid }, `HMAC key "${name}" version ${version}: kid learnt from a token Vault verified`);
    void this.refresh();
  }

  async #fingerprint(name: string, version: number): Promise<string> {
    const answer = await this.#control.write('hmac', `${this.#config.vault.mount}/hmac/${encodeURIComponent(name)}/sha2-256`, {
      input: HMAC_FINGERPRINT_INPUT, key_version: version,
    });
    const hmac = answer.data?.hmac;
    if (typeof hmac !== 'string') throw new HmacFingerprintMissingError(`Vault returned no HMAC fingerprint for "${name}" version ${version}`);
    return hmac;
  }
}
