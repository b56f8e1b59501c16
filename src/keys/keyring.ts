// The keyring: the last good state of every configured key, its versions' material, and the schedule applied
// to it. Views are recomputed when Vault's state changes or when the schedule's next transition time passes,
// so a version turns active or retired on time even between refreshes (and even while Vault is away).

import { createHash, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import type { KeyConfig } from './config.ts';
import { algSpec, type AlgSpec, type JwsAlg } from '../jwt/algorithms.ts';
import { aliasState, IMPORTED_VERSION, staticKeyActive, type AliasState } from './legacy.ts';
import type { VersionMaterial } from './material.ts';
import { computeSchedule, isPublished, type VersionState } from './schedule.ts';
import type { StaticKey } from './static-keys.ts';
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
  /** The alias of the imported version for tokens minted before the import (legacy_kid, accept_missing_kid). */
  legacy?: LegacyView;
}

export interface LegacyView {
  kid?: string;
  acceptMissingKid: boolean;
  version: number;
  alias: AliasState;
}

/** What a token is verified against: a published version (by its kid or an alias of it), or a static key. */
export interface VerificationTarget {
  key: string;
  /** 0 for a static key. */
  version: number;
  /** Signet's kid of the version (or the static key's kid). */
  kid: string;
  alg: JwsAlg;
  spec: AlgSpec;
  publicKey?: KeyObject;
  issuer: string;
  allowedTyp: string[];
  requireAudience: boolean;
  via: 'kid' | 'legacy_kid' | 'missing_kid' | 'static';
}

/** An alias or static key starting or stopping to verify (logged, and counted in a metric). */
export interface LegacyChange {
  kind: 'legacy_kid' | 'missing_kid' | 'static';
  key: string;
  kid?: string;
  from: AliasState['state'] | 'new';
  to: AliasState['state'];
  until?: number;
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
  #onLegacyChange: (change: LegacyChange) => void;
  #statics: StaticKey[] = [];
  #staticStates = new Map<string, AliasState['state']>();
  #legacyStates = new Map<string, AliasState['state']>();
  #aliases = new Map<string, VerificationTarget>();
  #missingKid: VerificationTarget | undefined;

  constructor(
    settings: ScheduleSettings, onChange: (change: StateChange) => void = () => {},
    onError: (key: string, message: string) => void = () => {},
    onLegacyChange: (change: LegacyChange) => void = () => {},
  ) {
    this.#settings = settings;
    this.#onChange = onChange;
    this.#onError = onError;
    this.#onLegacyChange = onLegacyChange;
  }

  /** The static_keys (published and verified with until their date, never signing). */
  setStaticKeys(keys: readonly StaticKey[]): void {
    this.#statics = [...keys];
    this.#validUntil = -Infinity;
  }

  /** The static keys and whether each is still published now. */
  staticKeys(now = Date.now() / 1000): Array<StaticKey & { active: boolean }> {
    return this.#statics.map((k) => ({ ...k, active: staticKeyActive(k.until, now) }));
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
    const aliases = new Map<string, VerificationTarget>();
    let missingKid: VerificationTarget | undefined;
    for (const [name, loaded] of this.#loaded) {
      // Each key on its own: one key whose state cannot be evaluated keeps its last view, and the others go on.
      try {
        validUntil = Math.min(validUntil, this.#evaluateKey(name, loaded, now, kids));
        const view = this.#views.get(name)!;
        const alias = this.#evaluateLegacy(view, loaded, now);
        if (alias) {
          if (alias.kid !== undefined) aliases.set(alias.kid, { ...alias.target, via: 'legacy_kid' });
          if (alias.missing) missingKid = { ...alias.target, via: 'missing_kid' };
          validUntil = Math.min(validUntil, alias.until);
        }
      } catch (error) {
        this.#onError(name, error instanceof Error ? error.message : String(error));
        // Back to the last state that evaluated (or none): the bad read is not evaluated again.
        const good = this.#good.get(name);
        if (good) this.#loaded.set(name, good);
        else this.#loaded.delete(name);
        const previous = this.#views.get(name);
        if (previous) for (const v of previous.versions) if (isPublished(v.state)) kids.set(v.kid, { key: name, version: v.version });
        // Its alias too, while the last good evaluation said it lasts.
        const legacy = previous?.legacy?.alias;
        if (legacy?.state === 'active' && now < legacy.until) {
          for (const [kid, target] of this.#aliases) if (target.key === name && target.via === 'legacy_kid') aliases.set(kid, target);
          if (this.#missingKid?.key === name) missingKid = this.#missingKid;
          validUntil = Math.min(validUntil, legacy.until);
        }
      }
    }
    for (const k of this.#statics) {
      const state = staticKeyActive(k.until, now) ? 'active' : 'expired';
      const before = this.#staticStates.get(k.name);
      if (before !== state) this.#onLegacyChange({ kind: 'static', key: k.name, kid: k.kid, from: before ?? 'new', to: state, until: k.until });
      this.#staticStates.set(k.name, state);
      if (state === 'active') {
        aliases.set(k.kid, {
          key: k.name, version: 0, kid: k.kid, alg: k.alg, spec: algSpec(k.alg), publicKey: k.publicKey, issuer: k.issuer,
          allowedTyp: ['JWT'], requireAudience: false, via: 'static',
        });
        validUntil = Math.min(validUntil, k.until);
      }
    }
    this.#aliases = aliases;
    this.#missingKid = missingKid;
    this.#kids = kids;
    this.#validUntil = validUntil;
    this.#jwks = undefined;
  }

  /**
   * The alias of a key's imported version (legacy_kid, accept_missing_kid): set on the view, reported when its
   * state changes, and returned while it is active.
   */
  #evaluateLegacy(view: KeyView, loaded: LoadedKey, now: number) {
    const { config, transit } = loaded;
    if (!config.legacy) return undefined;
    const imported = view.versions.find((v) => v.version === IMPORTED_VERSION);
    let alias: AliasState;
    // Transit clears imported_key when an imported key rotates, so it only tells while version 1 is the latest.
    if (!transit.imported && transit.latestVersion === IMPORTED_VERSION) {
      alias = { state: 'error', error: `Transit key "${view.name}" was not created by an import, so no version holds the old key` };
    } else if (!imported) {
      // min_decryption_version above the imported version: Vault no longer lists it, and its alias went with it.
      alias = { state: 'version-retired', until: 'at' in config.legacy.until ? config.legacy.until.at : 0 };
    } else {
      alias = aliasState(config.legacy, { version: IMPORTED_VERSION, createdAt: imported.createdAt, published: isPublished(imported.state) }, now);
    }
    const before = this.#legacyStates.get(view.name);
    this.#legacyStates.set(view.name, alias.state);
    view.legacy = { kid: config.legacy.kid, acceptMissingKid: config.legacy.acceptMissingKid, version: IMPORTED_VERSION, alias };
    this.#reportLegacy(view.name, config.legacy.kid, config.legacy.acceptMissingKid, before, alias);
    if (alias.state !== 'active' || !imported || imported.unidentified) return undefined;
    const target: Omit<VerificationTarget, 'via'> = {
      key: view.name, version: imported.version, kid: imported.kid, alg: view.alg, spec: view.spec, publicKey: imported.publicKey,
      issuer: config.issuer, allowedTyp: config.allowedTyp, requireAudience: config.requireAudience,
    };
    return { target, kid: config.legacy.kid, missing: config.legacy.acceptMissingKid, until: alias.until };
  }

  #reportLegacy(key: string, kid: string | undefined, missing: boolean, before: AliasState['state'] | undefined, after: AliasState): void {
    if (before === after.state) return;
    const until = 'until' in after ? after.until : undefined;
    if (kid !== undefined) this.#onLegacyChange({ kind: 'legacy_kid', key, kid, from: before ?? 'new', to: after.state, until });
    if (missing) this.#onLegacyChange({ kind: 'missing_kid', key, from: before ?? 'new', to: after.state, until });
  }

  /** Evaluates one key's schedule into its view; returns when it next changes (Infinity: no change scheduled). */
  #evaluateKey(name: string, loaded: LoadedKey, now: number, kids: Map<string, { key: string; version: number }>): number {
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

  /**
   * What a token's kid names: a published version, the alias (legacy_kid) of an imported version, or a static key;
   * for a token with no kid, the imported version of the key with accept_missing_kid. Undefined when none (or the
   * alias has expired).
   */
  resolve(kid: string | undefined, now = Date.now() / 1000): VerificationTarget | undefined {
    this.#evaluate(now);
    if (kid === undefined) return this.#missingKid;
    const found = this.findKid(kid, now);
    if (found) return targetOf(found.view, found.version);
    return this.#aliases.get(kid);
  }

  /**
   * The JWKS document: every published version of every asymmetric key, the imported version a second time under
   * its legacy_kid while that alias lasts, and the static keys until their date. HMAC keys never appear.
   */
  jwks(now = Date.now() / 1000): Jwks {
    this.#evaluate(now);
    if (!this.#jwks) {
      const keys: JWK[] = [];
      for (const view of this.#views.values()) {
        if (!view.spec.publishable) continue;
        for (const v of view.versions) if (isPublished(v.state) && v.jwk) keys.push(v.jwk);
      }
      for (const [kid, target] of this.#aliases) {
        // A legacy kid that is Signet's own kid too (the old system used RFC 7638 thumbprints) is there already.
        if (!target.spec.publishable || !target.publicKey || this.#kids.has(kid)) continue;
        const jwk = target.via === 'static'
          ? this.#statics.find((k) => k.kid === kid)?.jwk
          : this.#views.get(target.key)?.versions.find((v) => v.version === target.version)?.jwk;
        if (jwk) keys.push({ ...jwk, kid });
      }
      const body = JSON.stringify({ keys });
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
      this.#jwks = { body, etag, keyCount: keys.length };
    }
    return this.#jwks;
  }
}

/** A published version as what a token is verified against (found by Signet's own kid). */
export function targetOf(view: KeyView, version: VersionView): VerificationTarget {
  return {
    key: view.name, version: version.version, kid: version.kid, alg: view.alg, spec: view.spec, publicKey: version.publicKey,
    issuer: view.config.issuer, allowedTyp: view.config.allowedTyp, requireAudience: view.config.requireAudience, via: 'kid',
  };
}
