// Test harness: a real Vault (dev mode, or file-backed where restarts matter) on a free loopback port, with
// Transit enabled and helpers to create and change keys as an operator would. Nothing here is a fake.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { findVaultBinary, startDevVault, startFileVault, vaultApi, type VaultServer } from '../../src/vault/dev-server.ts';

const run = promisify(execFile);
let binary: Promise<string> | undefined;

/** The Vault binary (found or built once per test process; the build itself is cached across runs). */
export function vaultBinary(): Promise<string> {
  binary ??= findVaultBinary((line) => process.stderr.write(`${line}\n`));
  return binary;
}

export interface TestVault extends VaultServer {
  /** Runs the Vault CLI (the same binary) against this server, as an operator would; returns stdout. */
  cli(...args: string[]): Promise<string>;
  api(method: string, path: string, body?: unknown, token?: string): Promise<Record<string, unknown>>;
  createKey(name: string, type: string, extra?: Record<string, unknown>): Promise<void>;
  rotate(name: string): Promise<void>;
  configKey(name: string, settings: Record<string, unknown>): Promise<void>;
  readKey(name: string): Promise<Record<string, unknown>>;
  /** Vault's own transit/verify for a JWS signature or HMAC. */
  transitVerify(name: string, hash: string | undefined, signingInput: string, vaultSignature: string, extra?: Record<string, unknown>): Promise<boolean>;
}

export async function startVault(kind: 'dev' | 'file' = 'dev'): Promise<TestVault> {
  const bin = await vaultBinary();
  const server = kind === 'dev' ? await startDevVault(bin) : await startFileVault(bin);
  const api: TestVault['api'] = (method, path, body, token) => vaultApi(server.address, token ?? server.rootToken, method, path, body);
  await api('POST', 'sys/mounts/transit', { type: 'transit' });
  return Object.assign(server, {
    api,
    async cli(...args: string[]) {
      const { stdout } = await run(bin, args, { env: { ...process.env, VAULT_ADDR: server.address, VAULT_TOKEN: server.rootToken }, timeout: 30_000 });
      return stdout;
    },
    async createKey(name: string, type: string, extra: Record<string, unknown> = {}) {
      await api('POST', `transit/keys/${name}`, { type, ...(type === 'hmac' ? { key_size: 32 } : {}), ...extra });
    },
    async rotate(name: string) {
      await api('POST', `transit/keys/${name}/rotate`, {});
    },
    async configKey(name: string, settings: Record<string, unknown>) {
      await api('POST', `transit/keys/${name}/config`, settings);
    },
    async readKey(name: string) {
      return (await api('GET', `transit/keys/${name}`)).data as Record<string, unknown>;
    },
    async transitVerify(name: string, hash: string | undefined, signingInput: string, vaultSignature: string, extra: Record<string, unknown> = {}) {
      const input = Buffer.from(signingInput, 'ascii').toString('base64');
      const isHmac = vaultSignature.startsWith('hmac:');
      const body = isHmac ? { input, hmac: vaultSignature.slice(5) } : { input, signature: vaultSignature, ...extra };
      const data = (await api('POST', `transit/verify/${name}${hash ? `/${hash}` : ''}`, body)).data as { valid?: boolean };
      return data.valid === true;
    },
  });
}
