// The key-version schedule (DESIGN §5): a pure function of Vault's key state, the key's configuration and the
// time. Every Signet instance that reads the same Vault state computes the same states, so a fleet agrees
// without talking to itself. No I/O; times are seconds since the epoch.

export type VersionState = 'pending' | 'active' | 'verify-only' | 'retired';

export interface VaultVersion {
  version: number;
  /** Creation time in Vault, seconds since the epoch. */
  createdAt: number;
}

export interface VaultKeyTimeline {
  /** The versions Vault lists (those at or above min_decryption_version). */
  versions: readonly VaultVersion[];
  latestVersion: number;
  /** 0 when unset. Operators raise it to force signing onto a version at once. */
  minEncryptionVersion: number;
  /** Operators raise it to revoke every older version at once. */
  minDecryptionVersion: number;
  /** Seconds; 0 when Transit does not auto-rotate the key. */
  autoRotatePeriod: number;
  /**
   * HMAC keys: nothing is published (verification goes through Vault, which knows every version at once), so
   * the newest version signs at once; older versions stay verifiable until min_decryption_version is raised
   * (Transit gives no creation times for keys of type hmac, so no retirement can be computed from time).
   */
  symmetric?: boolean;
}

export interface ScheduleConfig {
  /** How long a new version is published before it signs. */
  publishDelay: number;
  /** Longest lifetime of a token: a superseded version stays verifiable this long after it stopped signing. */
  maxTtl: number;
  /** Tolerated clock difference between Signet, Vault and verifiers. */
  clockSkew: number;
  /**
   * How often Signet re-reads Vault: an instance may learn of a switch up to this late, so a superseded
   * version is kept this much longer.
   */
  refreshInterval: number;
}

export interface VersionSchedule {
  version: number;
  createdAt: number;
  state: VersionState;
  /** When this version's state changes next (pending → active, verify-only → retired); undefined if never by time. */
  nextChangeAt?: number;
  /** When it stopped signing, or will stop by schedule; undefined while no newer version exists. */
  supersededAt?: number;
}

export interface KeySchedule {
  signingVersion: number;
  versions: VersionSchedule[];
  /** Earliest time at which any state changes by itself; undefined when none will. */
  nextChangeAt?: number;
  /** When Transit's auto-rotation is due next (Vault checks about hourly, so it lands a little late). */
  nextRotationAt?: number;
}

/** The JWKS publishes these; verification accepts only these. */
export function isPublished(state: VersionState): boolean {
  return state !== 'retired';
}

export function computeSchedule(key: VaultKeyTimeline, config: ScheduleConfig, now: number): KeySchedule {
  const versions = [...key.versions].sort((a, b) => a.version - b.version);
  if (versions.length === 0) throw new Error('a Transit key always has at least one version');
  const oldestListed = versions[0]!.version;
  const newestListed = versions[versions.length - 1]!.version;
  if (key.symmetric) {
    return {
      signingVersion: newestListed,
      versions: versions.map((v) => ({ version: v.version, createdAt: v.createdAt, state: v.version === newestListed ? 'active' : 'verify-only' })),
      nextRotationAt: key.autoRotatePeriod > 0 && newest(versions).createdAt > 0 ? newest(versions).createdAt + key.autoRotatePeriod : undefined,
    };
  }

  // A version may sign once its publish delay has passed; version 1 signs at once (nobody verifies tokens of
  // a key that has none yet, so there is nothing to wait for).
  const signsFrom = (v: VaultVersion): number => (v.version === 1 ? v.createdAt : v.createdAt + config.publishDelay);

  let scheduled = oldestListed;
  for (const v of versions) if (signsFrom(v) <= now) scheduled = v.version;
  // min_encryption_version forces the switch; min_decryption_version leaves nothing older to sign with.
  const signingVersion = Math.min(newestListed, Math.max(scheduled, key.minEncryptionVersion, oldestListed));

  // A version stops signing, at the latest, when a newer one starts by schedule. A forced switch
  // (min_encryption_version) only makes it earlier, so this bound needs no memory of when it happened.
  const stopsSigningAt = new Map<number, number>();
  let earliestNewerStart = Infinity;
  for (let i = versions.length - 1; i >= 0; i--) {
    const v = versions[i]!;
    stopsSigningAt.set(v.version, earliestNewerStart);
    earliestNewerStart = Math.min(earliestNewerStart, signsFrom(v));
  }
  const grace = config.maxTtl + config.clockSkew + config.refreshInterval;

  const schedules: VersionSchedule[] = versions.map((v) => {
    const stop = stopsSigningAt.get(v.version)!;
    const supersededAt = Number.isFinite(stop) ? stop : undefined;
    if (v.version > signingVersion) {
      return { version: v.version, createdAt: v.createdAt, state: 'pending', nextChangeAt: signsFrom(v), supersededAt };
    }
    if (v.version === signingVersion) {
      return { version: v.version, createdAt: v.createdAt, state: 'active', supersededAt };
    }
    const retireAt = (supersededAt ?? now) + grace;
    if (retireAt <= now) return { version: v.version, createdAt: v.createdAt, state: 'retired', supersededAt };
    return { version: v.version, createdAt: v.createdAt, state: 'verify-only', nextChangeAt: retireAt, supersededAt };
  });

  const changes = schedules.map((s) => s.nextChangeAt).filter((t): t is number => t !== undefined && t > now);
  return {
    signingVersion,
    versions: schedules,
    nextChangeAt: changes.length > 0 ? Math.min(...changes) : undefined,
    nextRotationAt: key.autoRotatePeriod > 0 ? newest(versions).createdAt + key.autoRotatePeriod : undefined,
  };
}

function newest(versions: readonly VaultVersion[]): VaultVersion {
  return versions[versions.length - 1]!;
}
