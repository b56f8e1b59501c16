// Tokens minted before a key moved into Vault (DESIGN, migration; README, "Moving an existing key into Vault"): the
// pure rules for how long they keep verifying. No I/O; times are seconds since the epoch.
//
// A key imported into Transit (`signet keys import`) keeps its old tokens valid through an alias: `legacy_kid` makes
// the imported version answer to the kid the old system used, and `accept_missing_kid` lets tokens without a kid use
// it. Both end at `legacy_until`: a date, or a duration counted from the import itself, i.e. the creation time of the
// imported version in Vault. Every sidecar of a fleet reads that same time from Vault, so they agree on the end
// without talking to each other, and a restart (or a new pod) does not move it. Transit gives no creation time for
// keys of type hmac, so those need a date.

/** `legacy_until`: an absolute time, or seconds after the import. */
export type LegacyUntil = { at: number } | { afterImport: number };

export interface LegacyConfig {
  /** The kid the old system put in its tokens; undefined when its tokens carried none. */
  kid?: string;
  /** Tokens with no kid verify against the imported version (one key at most). */
  acceptMissingKid: boolean;
  until: LegacyUntil;
}

/** The version Transit created from the imported key: the first one of a key created by import. */
export const IMPORTED_VERSION = 1;

export interface ImportedVersion {
  version: number;
  /** Creation time in Vault; 0 or less when Vault does not give it (hmac keys). */
  createdAt: number;
  /** Whether the version itself is still published (not retired by rotation or min_decryption_version). */
  published: boolean;
}

export type AliasState =
  | { state: 'active'; until: number }
  | { state: 'expired'; until: number }
  | { state: 'version-retired'; until: number }
  | { state: 'error'; error: string };

/** When the alias ends, or an error saying why it cannot be known. */
export function aliasEnd(until: LegacyUntil, importedCreatedAt: number): number | { error: string } {
  if ('at' in until) return until.at;
  if (!(importedCreatedAt > 0)) {
    return { error: 'legacy_until is a duration, counted from the import, but Vault gives no creation time for this key (Transit lists none for hmac keys): set legacy_until to a date' };
  }
  return importedCreatedAt + until.afterImport;
}

/**
 * The alias of an imported key now: active (old tokens verify), expired (legacy_until passed), or gone with its
 * version (the imported version was retired like any other, which revokes the alias with it).
 */
export function aliasState(legacy: LegacyConfig, imported: ImportedVersion, now: number): AliasState {
  const end = aliasEnd(legacy.until, imported.createdAt);
  if (typeof end !== 'number') return { state: 'error', error: end.error };
  if (now >= end) return { state: 'expired', until: end };
  if (!imported.published) return { state: 'version-retired', until: end };
  return { state: 'active', until: end };
}

/** A `static_keys` entry is published and verifies until its end date, never after. */
export function staticKeyActive(until: number, now: number): boolean {
  return now < until;
}

/**
 * `legacy_until` from the configuration: an RFC 3339 date or date-time (a bare date means its start, UTC), or a
 * duration in seconds (already parsed). Returns undefined for anything else.
 */
export function parseLegacyUntil(value: unknown, parseDuration: (v: unknown) => number | undefined): LegacyUntil | undefined {
  if (value instanceof Date) return Number.isFinite(value.getTime()) ? { at: value.getTime() / 1000 } : undefined;
  const seconds = parseDuration(value);
  if (seconds !== undefined) return seconds > 0 ? { afterImport: seconds } : undefined;
  const at = parseDate(value);
  return at === undefined ? undefined : { at };
}

/** An RFC 3339 date (YYYY-MM-DD, UTC midnight) or date-time with a zone; seconds since the epoch, or undefined. */
export function parseDate(value: unknown): number | undefined {
  if (value instanceof Date) return Number.isFinite(value.getTime()) ? value.getTime() / 1000 : undefined;
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (!/^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:\d{2}))?$/.test(text)) return undefined;
  const ms = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text.replace(' ', 'T'));
  if (!Number.isFinite(ms)) return undefined;
  // Date.parse rolls 2026-02-31 over into March: a date that does not exist is refused instead.
  const [y, m, d] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  const day = new Date(Date.UTC(y, m - 1, d));
  if (day.getUTCFullYear() !== y || day.getUTCMonth() !== m - 1 || day.getUTCDate() !== d) return undefined;
  return ms / 1000;
}
