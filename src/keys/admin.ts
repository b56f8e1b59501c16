// Operator actions on Transit keys (`signet keys …`, `signet dev`), done in Vault in the safe order. Signet's
// own serving path never calls these: its Vault policy does not allow them.

import type { VaultControl } from '../vault/control.ts';
import { isTransitKeyType } from '../jwt/algorithms.ts';
import { SignetError } from '../errors.ts';

export interface CreateKeyOptions {
  type: string;
  /** Seconds; 0 or undefined: no auto-rotation. */
  autoRotatePeriod?: number;
}

export async function createKey(control: VaultControl, name: string, options: CreateKeyOptions): Promise<void> {
  if (!isTransitKeyType(options.type)) throw new SignetError(400, 'usage', `--type ${options.type} is not a Transit key type that can sign JWTs`);
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
