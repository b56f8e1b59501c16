// Operator actions on Transit keys (`signet keys …`, `signet dev`), done in Vault in the safe order. Signet's
// own serving path never calls these: its Vault policy does not allow them.

import type { KeyObject } from 'node:crypto';
import type { VaultControl } from '../vault/control.ts';
import { algSpec, isTransitKeyType } from '../jwt/algorithms.ts';
import { KeyTypeError, OperatorTokenRefusedError, VaultResponseError, VaultUnavailableError } from '../errors.ts';
import { ImportRefused, wrapForTransit, type ImportMaterial } from './import.ts';
import { IMPORTED_VERSION } from './legacy.ts';
import { publicJwk } from './material.ts';
import { parseTransitKey } from './transit-key.ts';

export interface CreateKeyOptions {
  type: string;
  /** Seconds; 0 or undefined: no auto-rotation. */
  autoRotatePeriod?: number;
}

export async function createKey(control: VaultControl, name: string, options: CreateKeyOptions): Promise<void> {
  if (!isTransitKeyType(options.type)) throw new KeyTypeError(`--type ${options.type} is not a Transit key type that can sign JWTs`);
  await control.write('create_key', `${control.mount}/keys/${encodeURIComponent(name)}`, {
    type: options.type,
    // Never exportable and no plaintext backup: the private key must never leave Vault.
    exportable: false,
    allow_plaintext_backup: false,
    ...(options.type === 'hmac' ? { key_size: 32 } : {}),
    ...(options.autoRotatePeriod ? { auto_rotate_period: `${options.autoRotatePeriod}s` } : {}),
  });
}

export async function rotateKey(control: VaultControl, name: string): Promise<void> {
  await control.write('rotate_key', `${control.mount}/keys/${encodeURIComponent(name)}/rotate`, {});
}

export async function configureKey(control: VaultControl, name: string, settings: Record<string, unknown>): Promise<void> {
  await control.write('config_key', `${control.mount}/keys/${encodeURIComponent(name)}/config`, settings);
}

/** Makes sure a Transit engine is mounted at `mount` (dev and tests). */
export async function ensureTransit(control: VaultControl): Promise<void> {
  const mounts = await control.read('list_mounts', 'sys/mounts');
  const data = (mounts.data ?? mounts) as Record<string, unknown>;
  if (!Object.hasOwn(data, `${control.mount}/`)) {
    await control.write('enable_transit', `sys/mounts/${control.mount}`, { type: 'transit' });
  }
}

/** Why an operator token was refused during an import, and what its policy needs. */
function importRefusedByVault(error: unknown, mount: string, name: string): unknown {
  if (error instanceof VaultUnavailableError && error.reason === 'refused') {
    return new OperatorTokenRefusedError(`Vault refused the token (${error.operation}): importing needs an operator token whose policy has deploy/vault/operator-policy.hcl`
      + ` (read on ${mount}/wrapping_key and ${mount}/keys/${name}, update on ${mount}/keys/${name}/import); Signet's own policy cannot import`);
  }
  return error;
}

export interface ImportedKey {
  /** Creation time of the imported version in Vault (seconds); 0 when Vault gives none (hmac keys). */
  createdAt: number;
}

/**
 * Imports a key into Transit through its BYOK protocol, as a new non-exportable key with no plaintext backup that
 * may rotate later (allow_rotation: the imported version then retires like any other). Refuses an existing name
 * before anything is written. Afterwards checks that Vault holds what was sent (imported, not exportable, and for
 * asymmetric keys the same public key). The caller zeroes `input.material`.
 */
export async function importKey(control: VaultControl, name: string, input: ImportMaterial): Promise<ImportedKey> {
  const path = `${control.mount}/keys/${encodeURIComponent(name)}`;
  try {
    try {
      await control.readTransitKey(name);
      throw new ImportRefused(`Transit key "${name}" already exists at ${path}: importing never replaces a key. Pick another name (and use it in the configuration), or, if that key is a failed earlier import, look at it with vault read ${path}`);
    } catch (error) {
      if (!(error instanceof VaultResponseError && error.vaultStatus === 404)) throw error;
    }
    const wrapping = await control.read('read_wrapping_key', `${control.mount}/wrapping_key`);
    const pem = wrapping.data?.public_key;
    if (typeof pem !== 'string') throw new VaultResponseError(`Vault returned no public_key at ${control.mount}/wrapping_key`);
    await control.write('import_key', `${path}/import`, {
      type: input.type,
      ciphertext: wrapForTransit(pem, input.material),
      hash_function: 'SHA256',
      exportable: false,
      allow_plaintext_backup: false,
      allow_rotation: true,
    });
    const key = parseTransitKey(name, (await control.readTransitKey(name)).data);
    if (!key.imported || key.exportable || key.type !== input.type) {
      throw new VaultResponseError(`after the import, Transit key "${name}" is ${key.type}, imported ${key.imported}, exportable ${key.exportable}: not what was sent`);
    }
    const version = key.versions.find((v) => v.version === IMPORTED_VERSION);
    if (input.publicKey) {
      const spki = (k: KeyObject) => k.export({ format: 'der', type: 'spki' });
      const theirs = version?.publicKey ? spki(publicJwk(key.type, version.publicKey).key) : undefined;
      if (!theirs || !spki(input.publicKey).equals(theirs)) throw new VaultResponseError(`Vault's public key of "${name}" version ${IMPORTED_VERSION} is not the public half of the imported key`);
    }
    return { createdAt: version?.createdAt ?? 0 };
  } catch (error) {
    throw importRefusedByVault(error, control.mount, name);
  }
}

/** The vault-policy.hcl rules Signet needs to sign and verify with a key of this alg. */
export function policyFor(mount: string, name: string, alg: import('../jwt/algorithms.ts').JwsAlg): string {
  const spec = algSpec(alg);
  const rule = (path: string, capability: string) => `path "${mount}/${path}" {\n  capabilities = ["${capability}"]\n}\n`;
  const rules = [rule(`keys/${name}`, 'read')];
  if (spec.operation === 'hmac') {
    // Signet fingerprints every hmac key version with an HMAC-SHA-256 when it loads the key (its kid).
    rules.push(rule(`hmac/${name}/${spec.hash}`, 'update'), rule(`verify/${name}/${spec.hash}`, 'update'));
    if (spec.hash !== 'sha2-256') rules.push(rule(`hmac/${name}/sha2-256`, 'update'));
  } else {
    rules.push(rule(`sign/${name}${spec.hash ? `/${spec.hash}` : ''}`, 'update'));
  }
  return rules.join('\n');
}
