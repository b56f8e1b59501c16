// The keyring: the last good state of every configured key, its versions' material, and the schedule applied
// to it. Views are recomputed when Vault's state changes or when the schedule's next transition time passes,
// so a version turns active or retired on time even between refreshes (and even while Vault is away).

import { createHash, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import type { KeyConfig } from '../config.ts';
import { algSpec, type AlgSpec, type JwsAlg } from '../jwt/algorithms.ts';
import type { VersionMaterial } from './material.ts';
import { computeSchedule, isPublished, type VersionState } from './schedule.ts';
import type { TransitKey } from './transit-key.ts';

export interface VersionView {
  version: number;
  kid: string;
  createdAt: number;
  state: VersionState;
  nextChangeAt?: number;
  jwk?: JWK;
  publicKey?: KeyObject;
  /** An HMAC version whose kid is not known here (see KeyRefresher): found by trying it, not by kid. */
  unidentified?: boolean;
}

export interface KeyView {
  name: string;
  config: KeyConfig;
  type: TransitKey['type'];
  alg: JwsAlg;
  spec: AlgSpec;
  signing: VersionView;
  versions: VersionView[];
  latestVersion: number;
  minEncryptionVersion: number;
  minDecryptionVersion: number;
  autoRotatePeriod: number;
  nextChangeAt?: number;
  nextRotationAt?: number;
  /** When Signet last read this key from Vault (ms since the epoch). */
  loadedAt: number;
}

export interface LoadedKey {
  config: KeyConfig;
  alg: JwsAlg;
  transit: TransitKey;
  materials: ReadonlyMap<number, VersionMaterial>;
  loadedAt: number;
}

export interface StateChange {
  key: string;
  version: number;
  kid: string;
  from: VersionState | 'new';
  to: VersionState | 'gone';
}

export interface Jwks {
  body: string;
  etag: string;
  keyCount: number;
}

export interface ScheduleSettings {
  clockSkew: number;
  refreshInterval: number;
}

export class Keyring {
  readonly #settings: ScheduleSettings;
  readonly #loaded = new Map<string, LoadedKey>();
  readonly #views = new Map<string, KeyView>();
  /** The last state of each key that evaluated without error. */
  readonly #good = new Map<string, LoadedKey>();
  #kids = new Map<string, { key: string; version: number }>();
  #validUntil = -Infinity;
  #jwks: Jwks | undefined;
  #onChange: (change: StateChange) => void;
  #onError: (key: string, message: string) => void;

  constructor(
    settings: ScheduleSettings, onChange: (change: StateChange) => void = () => {},
    onError: (key: string, message: string) => void = () => {},
  ) {
    this.#settings = settings;
    this.#onChange = onChange;
    this.#onError = onError;
  }

  /** Replaces a key's state with a fresh read from Vault. */
  update(key: LoadedKey): void {
    this.#loaded.set(key.config.name, key);
    this.#validUntil = -Infinity;
  }

  has(name: string): boolean {
    return this.#loaded.has(name);
  }

  loaded(name: string): LoadedKey | undefined {
    return this.#loaded.get(name);
  }

  /** Re-evaluates the schedule when state changed or a transition time has passed. `now` in seconds. */
  #evaluate(now: number): void {
    if (now < this.#validUntil) return;
    let validUntil = Infinity;
    const kids = new Map<string, { key: string; version: number }>();
    for (const [name, loaded] of this.#loaded) {
      // Each key on its own: one key whose state cannot be evaluated keeps its last view, and the others go on.
      try {
        validUntil = Math.min(validUntil, this.#evaluateKey(name, loaded, now, kids));
      } catch (error) {
        this.#onError(name, error instanceof Error ? error.message : String(error));
        // Back to the last state that evaluated (or none): the bad read is not evaluated again.
        const good = this.#good.get(name);
        if (good) this.#loaded.set(name, good);
        else this.#loaded.delete(name);
        const previous = this.#views.get(name);
        if (previous) for (const v of previous.versions) if (isPublished(v.state)) kids.set(v.kid, { key: name, version: v.version });
      }
    }
    this.#kids = kids;
    this.#validUntil = validUntil;
    this.#jwks = undefined;
  }

  /** Evaluates one key's schedule into its view; returns when it next changes (Infinity: no change scheduled). */
  #evaluateKey(name: string, loaded: LoadedKey, now: number, kids: Map<string, { key: string; version: number }>): number {
    {
      const { config, transit } = loaded;
      const schedule = computeSchedule(transit, {
        publishDelay: config.publishDelay,
        maxTtl: config.maxTtl,
        clockSkew: this.#settings.clockSkew,
        refreshInterval: this.#settings.refreshInterval,
      }, now);
      const versions: VersionView[] = schedule.versions.map((s) => {
        const material = loaded.materials.get(s.version)!;
        return {
          version: s.version, kid: material.kid, createdAt: s.createdAt, state: s.state, nextChangeAt: s.nextChangeAt,
          jwk: material.jwk, publicKey: material.publicKey, unidentified: material.unidentified,
        };
      });
      const signing = versions.find((v) => v.version === schedule.signingVersion);
      if (!signing) throw new Error(`no version of key "${name}" can sign (Vault listed versions ${versions.map((v) => v.version).join(', ') || 'none'})`);
      const view: KeyView = {
        name, config, type: transit.type, alg: loaded.alg, spec: algSpec(loaded.alg),
        signing,
        versions,
        latestVersion: transit.latestVersion,
        minEncryptionVersion: transit.minEncryptionVersion,
        minDecryptionVersion: transit.minDecryptionVersion,
        autoRotatePeriod: transit.autoRotatePeriod,
        nextChangeAt: schedule.nextChangeAt,
        nextRotationAt: schedule.nextRotationAt,
        loadedAt: loaded.loadedAt,
      };
      this.#reportChanges(this.#views.get(name), view);
      this.#views.set(name, view);
      for (const v of versions) if (isPublished(v.state) && !v.unidentified) kids.set(v.kid, { key: name, version: v.version });
      this.#good.set(name, loaded);
      return schedule.nextChangeAt ?? Infinity;
    }
  }

  #reportChanges(before: KeyView | undefined, after: KeyView): void {
    const previous = new Map(before?.versions.map((v) => [v.kid, v.state]));
    for (const v of after.versions) {
      const from = previous.get(v.kid) ?? 'new';
      if (from !== v.state) this.#onChange({ key: after.name, version: v.version, kid: v.kid, from, to: v.state });
      previous.delete(v.kid);
    }
    for (const [kid, state] of previous) {
      const version = before!.versions.find((v) => v.kid === kid)!.version;
      this.#onChange({ key: after.name, version, kid, from: state, to: 'gone' });
    }
  }

  view(name: string, now = Date.now() / 1000): KeyView | undefined {
    this.#evaluate(now);
    return this.#views.get(name);
  }

  views(now = Date.now() / 1000): KeyView[] {
    this.#evaluate(now);
    return [...this.#views.values()];
  }

  /** The published version a kid names (pending, active or verify-only), or undefined. */
  findKid(kid: string, now = Date.now() / 1000): { view: KeyView; version: VersionView } | undefined {
    this.#evaluate(now);
    const ref = this.#kids.get(kid);
    if (!ref) return undefined;
    const view = this.#views.get(ref.key)!;
    return { view, version: view.versions.find((v) => v.version === ref.version)! };
  }

  /** Published HMAC versions whose kid is unknown here, newest first (at most `limit`). */
  unidentified(limit: number, now = Date.now() / 1000): Array<{ view: KeyView; version: VersionView }> {
    this.#evaluate(now);
    const found: Array<{ view: KeyView; version: VersionView }> = [];
    for (const view of this.#views.values()) {
      for (const version of view.versions) if (version.unidentified && isPublished(version.state)) found.push({ view, version });
    }
    return found.sort((a, b) => b.version.version - a.version.version).slice(0, limit);
  }

  /** The JWKS document: every published version of every asymmetric key. HMAC keys never appear. */
  jwks(now = Date.now() / 1000): Jwks {
    this.#evaluate(now);
    if (!this.#jwks) {
      const keys: JWK[] = [];
      for (const view of this.#views.values()) {
        if (!view.spec.publishable) continue;
        for (const v of view.versions) if (isPublished(v.state) && v.jwk) keys.push(v.jwk);
      }
      const body = JSON.stringify({ keys });
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
      this.#jwks = { body, etag, keyCount: keys.length };
    }
    return this.#jwks;
  }
}
