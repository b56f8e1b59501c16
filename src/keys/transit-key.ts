// Parses Transit's `GET <mount>/keys/<name>` answer into plain data. No I/O. Asymmetric keys give each version
// a creation_time (RFC 3339) and a public key (PEM, or raw standard base64 for Ed25519); symmetric keys give
// each version its creation time as a Unix timestamp and nothing public.

import { VaultResponseError } from '../errors.ts';
import { isSymmetric, isTransitKeyType, type TransitKeyType } from '../jwt/algorithms.ts';
import type { VaultKeyTimeline } from './schedule.ts';

export interface TransitVersion {
  version: number;
  createdAt: number;
  /** PEM (RSA, ECDSA) or raw standard base64 (Ed25519); undefined for symmetric keys. */
  publicKey?: string;
}

export interface TransitKey extends VaultKeyTimeline {
  name: string;
  type: TransitKeyType;
  derived: boolean;
  exportable: boolean;
  /**
   * Created by Transit's import endpoint (signet keys import): its first version holds the imported key. Transit
   * sets it back to false when the key rotates.
   */
  imported: boolean;
  versions: TransitVersion[];
}

export function parseTransitKey(name: string, data: Record<string, unknown> | undefined): TransitKey {
  if (!data) throw new VaultResponseError(`Vault returned no data for key "${name}"`);
  const type = String(data.type);
  if (!isTransitKeyType(type)) {
    throw new VaultResponseError(`Transit key "${name}" has type ${type}, which cannot sign JWTs`);
  }
  const latest = Number(data.latest_version ?? 0);
  const minDecryption = Number(data.min_decryption_version ?? 1);
  // Transit lists no versions (and so no creation times) for keys of type hmac: they are min_decryption_version
  // through latest_version.
  const keys = (data.keys ?? (type === 'hmac' && latest >= 1
    ? Object.fromEntries(Array.from({ length: latest - minDecryption + 1 }, (_, i) => [String(minDecryption + i), 0]))
    : undefined)) as Record<string, unknown> | undefined;
  if (!keys || typeof keys !== 'object') throw new VaultResponseError(`Vault returned no versions for key "${name}"`);
  const versions: TransitVersion[] = Object.entries(keys).map(([v, entry]) => {
    const version = Number(v);
    if (typeof entry === 'number') return { version, createdAt: entry };
    const e = entry as { creation_time?: unknown; public_key?: unknown };
    // Millisecond precision: flooring to whole seconds would let a version sign up to a second early.
    const createdAt = Date.parse(String(e.creation_time)) / 1000;
    if (!Number.isFinite(createdAt)) throw new VaultResponseError(`key "${name}" version ${v} has no valid creation_time`);
    return { version, createdAt, publicKey: typeof e.public_key === 'string' && e.public_key ? e.public_key : undefined };
  }).sort((a, b) => a.version - b.version);
  if (versions.length === 0) throw new VaultResponseError(`Vault returned no versions for key "${name}"`);
  return {
    name,
    type,
    derived: data.derived === true,
    exportable: data.exportable === true,
    imported: data.imported_key === true,
    versions,
    latestVersion: latest || (versions.at(-1)?.version ?? 1),
    minEncryptionVersion: Number(data.min_encryption_version ?? 0),
    minDecryptionVersion: minDecryption,
    symmetric: isSymmetric(type),
    autoRotatePeriod: Number(data.auto_rotate_period ?? 0),
  };
}
