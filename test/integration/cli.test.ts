// The command line as an operator and a newcomer use it: bad configuration stops start-up naming the field;
// `signet serve` works from a file; `signet dev` prints a curl that signs and verifies, writes its configuration and
// prints the key commands that use it; `signet keys status`. Signet runs as the production bundle (dist/signet.mjs).

import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { freePort } from '../../src/vault/dev-server.ts';
import { builtSignet } from '../harness/build.ts';
import { ROOT } from '../harness/ops.ts';
import { eventually } from '../harness/signet.ts';
import { startVault, vaultBinary, type TestVault } from '../harness/vault.ts';

const run = promisify(execFile);
// The production bundle (test/harness/build.ts), as the image runs it.
const CLI = await builtSignet();
const dir = mkdtempSync(join(tmpdir(), 'signet-cli-'));

function configFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('configuration errors stop start-up and name the field', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['unknown field', 'keys: [{name: app, issuer: "https://i"}]\nlisten_addr: 1\n', /configuration: listen_addr: unknown field/],
    ['bad duration', 'keys: [{name: app, issuer: "https://i", max_ttl: "ten minutes"}]\n', /configuration: keys\[0\]\.max_ttl: must be a duration/],
    ['alg unknown', 'keys: [{name: app, issuer: "https://i", alg: ES257}]\n', /configuration: keys\[0\]\.alg: unknown JWS alg "ES257"/],
    ['publish_delay too short', 'keys: [{name: app, issuer: "https://i", publish_delay: 1m}]\n', /configuration: keys\[0\]\.publish_delay: must exceed jwks\.max_age \+ refresh_interval \+ clock_skew \(390s\)/],
    ['non-loopback listen', 'listen: 0.0.0.0:8250\nkeys: [{name: app, issuer: "https://i"}]\n', /configuration: listen: 0\.0\.0\.0:8250 is not a loopback address/],
    ['no keys', 'listen: 127.0.0.1:8250\n', /configuration: keys: must list at least one Transit key/],
    ['not YAML', 'keys: [\n', /not valid YAML or JSON/],
  ];
  for (const [name, text, expected] of cases) {
    test(name, async () => {
      const result = await cli(['serve', '--config', configFile(`${name.replace(/\W/g, '_')}.yaml`, text)], { VAULT_TOKEN: 'unused' });
      assert.equal(result.code, 2);
      assert.match(result.stderr, expected);
      assert.doesNotMatch(result.stderr, /unused/, 'the Vault token is never echoed');
    });
  }

  test('an alg that does not fit the key type keeps the key unloaded, says why, and /readyz stays false', async () => {
    const vault = await startVault();
    try {
      await vault.createKey('app', 'ecdsa-p256');
      const port = await freePort();
      const file = configFile('mismatch.yaml', `listen: 127.0.0.1:${port}\nvault: {address: "${vault.address}"}\nkeys: [{name: app, issuer: "https://i", alg: RS256}]\n`);
      const child = spawn(process.execPath, [CLI, 'serve', '--config', file], { env: { ...process.env, VAULT_TOKEN: vault.rootToken }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c) => { out += c; });
      try {
        // The key load is logged during start-up, before Signet listens: wait for both before asking /readyz.
        await eventually(() => out.includes('key_load_failed') && out.includes('"event":"listening"'), 10_000, 'the key load error, then listening');
        assert.match(out, /keys\[0\]\.alg: alg RS256 does not fit Transit key type ecdsa-p256/);
        const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
        assert.equal(ready.status, 503);
      } finally {
        child.kill('SIGTERM');
      }
    } finally {
      await vault.stop();
    }
  });
});

describe('serve, keys status and keys rotate against a real Vault', () => {
  let vault: TestVault;
  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ed25519');
  });
  after(async () => vault?.stop());

  test('serve from a config file, then stop cleanly on SIGTERM', async () => {
    const port = await freePort();
    const file = configFile('serve.yaml', `listen: 127.0.0.1:${port}\nvault:\n  address: ${vault.address}\nkeys:\n  - name: app\n    issuer: https://issuer.test\n`);
    const child = spawn(process.execPath, [CLI, 'serve', '--config', file], { env: { ...process.env, VAULT_TOKEN: vault.rootToken }, stdio: ['ignore', 'pipe', 'pipe'] });
    let logs = '';
    child.stdout.on('data', (c) => { logs += c; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await eventually(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 15_000, 'readiness');
      const signed = await (await fetch(`http://127.0.0.1:${port}/v1/sign`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"claims":{"sub":"a"}}' })).json() as { alg: string };
      assert.equal(signed.alg, 'EdDSA');
    } catch (error) {
      // A failure must not leave the server running: it would keep this test file (and the whole run) from ending.
      child.kill('SIGKILL');
      throw error;
    }
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.ok(!logs.includes(vault.rootToken), 'the Vault token never reaches a log line');
  });

  test('keys status prints versions, kids, states; keys rotate publishes a pending version', async () => {
    const file = configFile('keys.yaml', `vault:\n  address: ${vault.address}\nkeys:\n  - name: app\n    issuer: https://issuer.test\n`);
    const env = { VAULT_TOKEN: vault.rootToken };
    const status = await cli(['keys', 'status', '--config', file], env);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^app {2}\(ed25519, EdDSA\) {2}signing: v1/m);
    assert.match(status.stdout, /VERSION\s+KID\s+CREATED\s+STATE\s+NEXT CHANGE/);
    assert.match(status.stdout, /v1\s+[A-Za-z0-9_-]{43}\s+\d{4}-\d\d-\d\dT[\d:]+Z\s+active/);
    const rotated = await cli(['keys', 'rotate', 'app', '--config', file], env);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.match(rotated.stdout, /rotated app: v2 \(kid [A-Za-z0-9_-]{43}\) is published now and signs from \d{4}-/);
    const after = await cli(['keys', 'status', '--config', file], env);
    assert.match(after.stdout, /v2\s+\S+\s+\S+\s+pending\s+\d{4}-/);
  });
});

describe('signet dev', () => {
  test('starts Vault and Signet, prints a curl that signs and then verifies a token, and key commands that work next to it', async () => {
    // The backend under test, through the documented override (`signet dev` takes VAULT_BIN, a vault or a bao).
    const bin = await vaultBinary();
    const port = await freePort();
    const configOut = join(dir, 'dev', 'signet dev.yaml');
    mkdirSync(dirname(configOut), { recursive: true });
    const child = spawn(process.execPath, [CLI, 'dev', '--listen', `127.0.0.1:${port}`, '--write-config', configOut], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VAULT_BIN: bin } });
    let stderr = '';
    child.stderr.on('data', (c) => { stderr += c; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await eventually(() => stderr.includes('Ctrl-C stops Signet and Vault.'), 60_000, 'the dev banner');
      const lines = stderr.split('\n');
      const start = lines.findIndex((l) => l.trim().startsWith('TOKEN=$(curl'));
      const command = `${lines[start]!.trim().replace(/\\$/, '')}\n${lines[start + 1]!.trim()}`;
      const { stdout } = await run('bash', ['-c', command], { timeout: 20_000 });
      const answer = JSON.parse(stdout) as { valid: boolean; alg: string; claims: { sub: string; aud: string } };
      assert.equal(answer.valid, true);
      assert.equal(answer.alg, 'ES256');
      assert.equal(answer.claims.sub, 'demo');

      // The configuration it runs with is in the file it names (the Vault token is not: it comes from the env).
      assert.ok(stderr.includes(`Configuration: ${configOut}.`), stderr);
      const written = readFileSync(configOut, 'utf8');
      assert.match(written, new RegExp(`^listen: 127\\.0\\.0\\.1:${port}$`, 'm'));
      assert.match(written, /^default_key: app$/m);
      const rootToken = /VAULT_TOKEN=(\S+) \(dev only\)/.exec(stderr)![1]!;
      assert.ok(!written.includes(rootToken), 'the Vault token is not written to the file');

      // The printed key commands, run as printed (npx signet from this checkout, a fresh shell with only them).
      const shell = (pattern: RegExp) => lines.filter((l) => pattern.test(l.trim())).map((l) => l.trim());
      const [exportToken] = shell(/^export VAULT_TOKEN=/);
      const [status] = shell(/^npx signet keys status --config /);
      const [rotate] = shell(/^npx signet keys rotate app --config /);
      assert.ok(exportToken && status && rotate, stderr);
      const { VAULT_TOKEN: _token, VAULT_ADDR: _addr, ...env } = process.env;
      const sh = (commands: string[]) => run('bash', ['-c', commands.join('\n')], { cwd: ROOT, env, timeout: 60_000 });
      const before = await sh([exportToken, status]);
      for (const key of ['app  (ecdsa-p256, ES256)', 'ed  (ed25519, EdDSA)', 'rsa  (rsa-2048, RS256)', 'hmac  (hmac, HS256)']) {
        assert.ok(before.stdout.includes(`${key}  signing: v1`), before.stdout);
      }
      const rotated = await sh([exportToken, rotate]);
      assert.match(rotated.stdout, /^rotated app: v2 \(kid [A-Za-z0-9_-]{43}\) is published now/);
      const after = await sh([exportToken, status]);
      assert.match(after.stdout, /^v2\s+\S+\s+\S+\s+pending\s+\d{4}-/m);
      // Without the token the command says what is missing, naming the field.
      const withoutToken = await sh([status]).then(() => undefined, (e: { stderr: string }) => e.stderr);
      assert.match(withoutToken ?? '', /vault\.auth: method token needs VAULT_TOKEN/);
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0);
  });

  test('without --write-config the file goes to a temporary directory, removed when it stops', async () => {
    const bin = await vaultBinary();
    const port = await freePort();
    const child = spawn(process.execPath, [CLI, 'dev', '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VAULT_BIN: bin } });
    let stderr = '';
    child.stderr.on('data', (c) => { stderr += c; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let file: string | undefined;
    try {
      await eventually(() => stderr.includes('Ctrl-C stops Signet and Vault.'), 60_000, 'the dev banner');
      file = /^Configuration: (\S+) \(removed on exit/m.exec(stderr)?.[1];
      assert.ok(file && existsSync(file), stderr);
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0);
    assert.equal(existsSync(file!), false, `${file} outlived signet dev`);
  });
});

describe('usage errors', () => {
  test('keys without an action, an unknown command and an unknown option exit 2 and say what is wrong', async () => {
    const noAction = await cli(['keys']);
    assert.equal(noAction.code, 2);
    assert.match(noAction.stderr, /^signet: keys: an action is required \(status, create, rotate, retire, import\)/);
    const unknown = await cli(['sing']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^signet: unknown command "sing"/);
    const option = await cli(['serve', '--nope']);
    assert.equal(option.code, 2);
    assert.match(option.stderr, /Unknown option '--nope'/);
  });
});
