// signet dev: a Vault dev server (in memory) with four Transit keys, and Signet in front of it, for trying Signet
// out. Its configuration is written to a file, and the banner prints the commands that use it (keys status,
// keys rotate), so that the other commands work next to it as they would against a real deployment.
//
// Not part of the production bundle (npm run build): src/cli.ts loads this module from the sources, so the image
// carries neither it nor the code that starts Vault servers (src/vault/dev-server.ts).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { loadConfig } from './config.ts';
import { createKey, ensureTransit } from './keys/admin.ts';
import { serve } from './server.ts';
import { onSignals } from './shutdown.ts';
import { VaultControl } from './vault/control.ts';
import { findVaultBinary, startDevVault } from './vault/dev-server.ts';

export const DEV_KEYS = [
  { name: 'app', type: 'ecdsa-p256', alg: 'ES256' },
  { name: 'ed', type: 'ed25519', alg: 'EdDSA' },
  { name: 'rsa', type: 'rsa-2048', alg: 'RS256' },
  { name: 'hmac', type: 'hmac', alg: 'HS256' },
] as const;

/** The configuration document `signet dev` runs with and writes to its file (the Vault token stays in the env). */
export function devConfigDocument(listen: string, vaultAddress: string): Record<string, unknown> {
  return {
    listen,
    vault: { address: vaultAddress },
    keys: DEV_KEYS.map((k) => ({ name: k.name, alg: k.alg, issuer: `http://${listen}`, audiences: ['api'] })),
    default_key: 'app',
  };
}

/** A shell word: quoted unless it is plainly safe. */
const shellWord = (word: string): string => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`);

export async function runDev(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { listen: { type: 'string', default: '127.0.0.1:8250' }, 'write-config': { type: 'string' } },
  });
  // The configuration file: where --write-config says (kept), else a fresh temporary directory (removed on exit,
  // since the in-memory Vault it names goes away with it).
  const tempDir = values['write-config'] ? undefined : mkdtempSync(join(tmpdir(), 'signet-dev-'));
  const configFile = values['write-config'] ? resolve(values['write-config']) : join(tempDir!, 'signet.yaml');
  process.stderr.write('signet dev: finding a Vault binary (VAULT_BIN, vault or bao on PATH, cache, else build)\n');
  const binary = await findVaultBinary();
  const vault = await startDevVault(binary);
  process.stderr.write(`signet dev: Vault dev server at ${vault.address} (in memory; stops with Signet)\n`);
  let stopped = false;
  const stopVault = async () => {
    if (!stopped) {
      stopped = true;
      await vault.stop();
      if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    }
  };
  try {
    writeFileSync(configFile, `# signet dev: Vault dev server at ${vault.address}; the token comes from VAULT_TOKEN.\n${stringify(devConfigDocument(values.listen, vault.address))}`);
    // Signet reads the file it wrote, as `keys status --config FILE` will.
    const config = loadConfig(configFile, { VAULT_TOKEN: vault.rootToken });
    const control = new VaultControl(config.vault);
    control.setToken(vault.rootToken);
    await ensureTransit(control);
    for (const key of DEV_KEYS) await createKey(control, key.name, { type: key.type });
    control.close();
    const { close, address } = await serve(config);
    onSignals(async () => {
      await close();
      await stopVault();
    });
    const url = `http://${address.replace(/^https?:\/\//, '')}`;
    const file = shellWord(configFile);
    process.stderr.write([
      '',
      `Signet is running at ${url}, signing with keys ${DEV_KEYS.map((k) => `${k.name} (${k.alg})`).join(', ')}.`,
      'Sign a token, then verify it:',
      '',
      `  TOKEN=$(curl -s -X POST ${url}/v1/sign/app -H 'content-type: application/json' -d '{"claims":{"sub":"demo","aud":"api"},"ttl":"10m"}' | sed -E 's/.*"token":"([^"]+)".*/\\1/') && \\`,
      `  curl -s -X POST ${url}/v1/verify -H 'content-type: application/json' -d "{\\"token\\":\\"$TOKEN\\",\\"audience\\":\\"api\\"}"`,
      '',
      `JWKS: ${url}/.well-known/jwks.json   keys: ${url}/v1/keys   metrics: ${url}/metrics`,
      '',
      `Configuration: ${configFile}${tempDir ? ' (removed on exit; --write-config FILE keeps it)' : ''}. Key commands against this Vault:`,
      '',
      `  export VAULT_TOKEN=${shellWord(vault.rootToken)}`,
      `  npx signet keys status --config ${file}`,
      `  npx signet keys rotate app --config ${file}`,
      '',
      `Vault: VAULT_ADDR=${vault.address} VAULT_TOKEN=${vault.rootToken} (dev only)`,
      'Ctrl-C stops Signet and Vault.',
      '',
    ].join('\n'));
  } catch (error) {
    await stopVault();
    throw error;
  }
}
