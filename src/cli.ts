// signet serve | dev | keys status|create|rotate|retire

import { parseArgs } from 'node:util';
import { readSubjectKey } from './audit/auditor.ts';
import { parseAuditConfig } from './audit/config.ts';
import { findRecords, rotatedFiles } from './audit/find.ts';
import { subjectHmac, type AuditFilter, type AuditRecord } from './audit/record.ts';
import { loadConfig, readConfigDocument, type Config } from './config.ts';
import { formatDuration, parseDuration } from './duration.ts';
import { ConfigError, SignetError } from './errors.ts';
import { readFileSync, statSync } from 'node:fs';
import { createKey, importKey, policyFor, rotateKey, configureKey } from './keys/admin.ts';
import { checkKeyFileMode, hmacMaterial, privateKeyMaterial, type ImportMaterial, type SecretEncoding } from './keys/import.ts';
import { Keyring, type KeyView } from './keys/keyring.ts';
import { loadStaticKeys, type StaticKey } from './keys/static-keys.ts';
import { KeyRefresher } from './keys/refresher.ts';
import { createLogger } from './observability/logger.ts';
import { serve } from './server.ts';
import { onSignals } from './shutdown.ts';
import { VaultAuth } from './vault/auth.ts';
import { VaultControl } from './vault/control.ts';

const USAGE = `Usage:
  signet serve [--config FILE] [--listen ADDR]     run the sidecar (config file + VAULT_* / SIGNET_* env)
  signet dev [--listen ADDR] [--write-config FILE] local Vault dev server + Signet, for trying it out (from a checkout)
  signet keys status [--config FILE]               versions, kids, states and dates of every configured key
  signet keys create NAME --type TYPE [--auto-rotate 90d]
  signet keys rotate NAME                          new version in Vault (published now, signs after publish_delay)
  signet keys retire NAME [--force]                raise min_decryption_version over versions whose tokens expired
  signet keys import NAME --key-file PEM [--alg ALG] [--force]
  signet keys import NAME --hmac-secret-file FILE [--hmac-encoding raw|base64|base64url] [--alg HS256] [--force]
                                                   move an existing private key or HMAC secret into Transit (BYOK)
  signet audit find [--config FILE] [FILE...] [--jti ID] [--caller NAME] [--key NAME] [--kid KID] [--sub VALUE]
                    [--outcome issued|refused|invalid|unavailable|error] [--since T] [--until T] [--json]
                                                   audit records (audit.file and its rotated, gzipped copies, or
                                                   the FILEs given); T: RFC 3339 time, or a duration ago (1h)

Types: ed25519, ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa-2048, rsa-3072, rsa-4096, hmac.
Environment: VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE, VAULT_CACERT, VAULT_CLIENT_CERT, VAULT_CLIENT_KEY,
SIGNET_CONFIG, SIGNET_LISTEN, SIGNET_LOG_LEVEL.`;

function fail(message: string, code = 1): never {
  process.stderr.write(`signet: ${message}\n`);
  process.exit(code);
}

async function runServe(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, listen: { type: 'string' } } });
  const env = values.listen ? { ...process.env, SIGNET_LISTEN: values.listen } : process.env;
  const config = loadConfig(values.config, env);
  const { close } = await serve(config);
  onSignals(close);
}

/**
 * `signet dev` lives in src/dev.ts and loads from the sources, by a path esbuild cannot follow: the production bundle
 * (dist/signet.mjs) does not contain it, nor the code that starts Vault dev servers. Both src/cli.ts and
 * dist/signet.mjs find it at ../src/dev.ts; the image has no src/, so there it says so.
 */
async function runDev(argv: string[]): Promise<void> {
  const devModule = new URL('../src/dev.ts', import.meta.url);
  let dev: typeof import('./dev.ts');
  try {
    dev = await import(devModule.href) as typeof import('./dev.ts');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes(devModule.pathname)) {
      fail('dev: needs the sources (src/dev.ts), which a production build does not ship; run it from a checkout: npx signet dev', 2);
    }
    throw error;
  }
  await dev.runDev(argv);
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

const when = (seconds: number | undefined): string => (seconds === undefined || seconds <= 0 ? '-' : new Date(Math.round(seconds) * 1000).toISOString().replace('.000Z', 'Z'));

export function formatStatus(view: KeyView): string {
  const header = `${view.name}  (${view.type}, ${view.alg})  signing: v${view.signing.version}  publish_delay ${formatDuration(view.config.publishDelay)}  max_ttl ${formatDuration(view.config.maxTtl)}`
    + `  next rotation: ${view.autoRotatePeriod > 0 ? when(view.nextRotationAt) : 'not scheduled (no auto_rotate_period)'}`;
  const rows = [['VERSION', 'KID', 'CREATED', 'STATE', 'NEXT CHANGE']];
  for (const v of [...view.versions].reverse()) {
    rows.push([`v${v.version}`, v.kid, when(v.createdAt), v.state, when(v.nextChangeAt)]);
  }
  let legacy = '';
  if (view.legacy) {
    const { alias } = view.legacy;
    const names = [view.legacy.kid !== undefined ? `kid ${view.legacy.kid}` : '', view.legacy.acceptMissingKid ? 'tokens without a kid' : ''].filter(Boolean).join(' and ');
    const end = 'until' in alias ? when(alias.until) : '-';
    const state = alias.state === 'active' ? `accepted until ${end}` : alias.state === 'expired' ? `expired at ${end}` : alias.state === 'version-retired' ? 'gone with the retired imported version' : `not honoured: ${alias.error}`;
    legacy = `old tokens (${names}) → v${view.legacy.version}: ${state}\n`;
  }
  return `${header}\n${table(rows)}\n${legacy}`;
}

export function formatStaticKeys(keys: ReadonlyArray<StaticKey & { active: boolean }>): string {
  const rows = [['STATIC KEY', 'KID', 'ALG', 'STATE', 'UNTIL']];
  for (const k of keys) rows.push([k.name, k.kid, k.alg, k.active ? 'verify-only (static)' : 'expired', when(k.until)]);
  return `${table(rows)}\n`;
}

const IMPORT_USAGE = 'keys import NAME --key-file PEM [--alg ALG] | --hmac-secret-file FILE [--hmac-encoding raw|base64|base64url] [--alg HS256]';

/** Reads the key file (refused when group or others can read it) and checks what it holds; nothing touches Vault. */
function readImportInput(values: { 'key-file'?: string; 'hmac-secret-file'?: string; 'hmac-encoding'?: string; alg?: string; force?: boolean }): ImportMaterial {
  const keyFile = values['key-file'];
  const secretFile = values['hmac-secret-file'];
  if ((keyFile === undefined) === (secretFile === undefined)) fail(`${IMPORT_USAGE}\n(one of --key-file or --hmac-secret-file)`, 2);
  const file = (keyFile ?? secretFile)!;
  let mode: number;
  let content: Buffer;
  try {
    mode = statSync(file).mode;
    content = readFileSync(file);
  } catch (error) {
    fail(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, 2);
  }
  try {
    checkKeyFileMode(file, mode, values.force === true);
    if (keyFile !== undefined) return privateKeyMaterial(content.toString('utf8'), values.alg);
    const encoding = values['hmac-encoding'] ?? 'raw';
    if (!['raw', 'base64', 'base64url'].includes(encoding)) fail('--hmac-encoding must be raw, base64 or base64url', 2);
    return hmacMaterial(content, encoding as SecretEncoding, values.alg);
  } finally {
    content.fill(0);
  }
}

async function runImport(name: string | undefined, values: Parameters<typeof readImportInput>[0] & { config?: string }): Promise<void> {
  if (!name) fail(IMPORT_USAGE, 2);
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(name)) fail(`"${name}" is not a Transit key name (letters, digits, _ . -)`, 2);
  const input = readImportInput(values);
  try {
    // Importing needs only the Vault settings: the key need not be in the configuration yet.
    const config = loadConfig(values.config, process.env, { keysRequired: false });
    const control = await connect(config);
    let imported;
    try {
      imported = await importKey(control, name, input);
    } finally {
      control.close();
    }
    const file = values['key-file'] ?? values['hmac-secret-file'];
    const mount = config.vault.mount;
    const importedAt = imported.createdAt > 0 ? when(imported.createdAt) : undefined;
    process.stdout.write([
      `imported ${file} into Transit key ${name} (${input.type}, ${input.alg}): not exportable, no plaintext backup, version 1 holds the imported key${importedAt ? ` (created ${importedAt})` : ''}.`,
      '',
      'The plaintext key is no longer needed by anything that moves to Signet. Once every app signs through Signet:',
      `  shred -u ${file}                      (and every other copy: backups, CI variables, .env files)`,
      '  kubectl delete secret <the Secret that held it>   (and remove it from wherever it was templated from)',
      'Until then, whoever holds a copy can still sign tokens that Signet accepts.',
      '',
      'Add the key to the configuration, with an alias for the tokens already out there:',
      `  - name: ${name}`,
      `    alg: ${input.alg}`,
      '    issuer: <the iss of the old tokens>',
      `    legacy_kid: ${input.kid ?? '<the kid in the header of the old tokens>'}     # or, for tokens with no kid: accept_missing_kid: true`,
      `    legacy_until: ${input.type === 'hmac' ? '<a date: when the last old token expires, e.g. 2026-12-31>' : '<a date, or the longest lifetime of the old tokens (e.g. 30d) counted from the import>'}`,
      '',
      `Signet's Vault policy (vault-policy.hcl) needs, for this key:`,
      policyFor(mount, name, input.alg).trimEnd(),
      '',
      'Then follow "Moving an existing key into Vault" in the README: deploy Signet, check `signet keys status`, verify an old token with POST /v1/verify, switch the apps.',
      '',
    ].join('\n'));
  } finally {
    input.material.fill(0);
  }
}

/** A control-plane client authenticated once with the configured auth method (no renewal: commands are short). */
async function connect(config: Config): Promise<VaultControl> {
  const control = new VaultControl(config.vault);
  const auth = new VaultAuth(config.vault.auth, control, createLogger('warn'));
  await auth.start();
  auth.stop();
  return control;
}

async function loadKeys(config: Config): Promise<{ keyring: Keyring; refresher: KeyRefresher; control: VaultControl }> {
  const control = await connect(config);
  const keyring = new Keyring({ clockSkew: config.clockSkew, refreshInterval: config.refreshInterval });
  keyring.setStaticKeys(loadStaticKeys(config.staticKeys));
  const refresher = new KeyRefresher(config, control, keyring, createLogger('warn'));
  await refresher.refresh();
  return { keyring, refresher, control };
}

async function runKeys(argv: string[]): Promise<void> {
  const [action, ...rest] = argv;
  if (!['status', 'create', 'rotate', 'retire', 'import'].includes(action ?? '')) {
    fail(`keys: ${action ? `unknown action "${action}"` : 'an action is required'} (status, create, rotate, retire, import)\n${USAGE}`, 2);
  }
  const { values, positionals } = parseArgs({
    args: rest, allowPositionals: true,
    options: {
      config: { type: 'string' }, type: { type: 'string' }, 'auto-rotate': { type: 'string' }, force: { type: 'boolean', default: false },
      'key-file': { type: 'string' }, 'hmac-secret-file': { type: 'string' }, 'hmac-encoding': { type: 'string' }, alg: { type: 'string' },
    },
  });
  const configFile = values.config;
  if (action === 'import') return runImport(positionals[0], values);
  if (action === 'create') {
    const name = positionals[0] ?? fail('keys create NAME --type TYPE');
    if (!values.type) fail('keys create: --type is required (ed25519, ecdsa-p256, rsa-2048, hmac, …)');
    const autoRotate = values['auto-rotate'] === undefined ? undefined : parseDuration(values['auto-rotate']);
    if (values['auto-rotate'] !== undefined && autoRotate === undefined) fail('keys create: --auto-rotate must be a duration such as 90d');
    // Creating a key needs only the Vault settings: the key need not be in the configuration yet.
    const config = loadConfig(configFile, process.env, { keysRequired: false });
    const control = await connect(config);
    await createKey(control, name, { type: values.type!, autoRotatePeriod: autoRotate });
    process.stdout.write(`created Transit key ${name} (${values.type}, not exportable${autoRotate ? `, auto-rotates every ${formatDuration(autoRotate)}` : ''})\n`);
    control.close();
    return;
  }
  const config = loadConfig(configFile);
  const { keyring, refresher, control } = await loadKeys(config);
  try {
    if (action === 'status') {
      for (const k of config.keys) {
        const view = keyring.view(k.name);
        if (!view) process.stdout.write(`${k.name}: not loaded: ${refresher.errors.get(k.name) ?? 'unknown error'}\n\n`);
        else process.stdout.write(`${formatStatus(view)}\n`);
      }
      if (config.staticKeys.length > 0) process.stdout.write(formatStaticKeys(keyring.staticKeys()));
      return;
    }
    const name = positionals[0] ?? fail(`keys ${action} NAME`);
    if (!config.keys.some((k) => k.name === name)) fail(`key "${name}" is not in the configuration`);
    if (action === 'rotate') {
      await rotateKey(control, name);
      await refresher.refresh();
      const view = keyring.view(name)!;
      const newest = view.versions.at(-1)!;
      process.stdout.write(`rotated ${name}: v${newest.version} (kid ${newest.kid}) is published now and signs from ${when(newest.nextChangeAt ?? newest.createdAt)}\n`);
      return;
    }
    if (action === 'retire') {
      const view = keyring.view(name) ?? fail(`key "${name}" is not loaded: ${refresher.errors.get(name)}`);
      const older = view.versions.filter((v) => v.version < view.signing.version);
      const live = older.filter((v) => v.state === 'verify-only');
      let target = view.minDecryptionVersion;
      for (const v of older) if (v.state === 'retired') target = v.version + 1;
      if (live.length > 0 && values.force) target = view.signing.version;
      else if (live.length > 0) {
        const detail = live.map((v) => `v${v.version} until ${when(v.nextChangeAt)}`).join(', ');
        process.stdout.write(`tokens signed by ${detail} may still be live; not retiring those (use --force to revoke them now)\n`);
      }
      if (target <= view.minDecryptionVersion) {
        process.stdout.write(`nothing to retire for ${name}: min_decryption_version stays ${view.minDecryptionVersion}\n`);
        if (live.length > 0 && !values.force) process.exitCode = 2;
        return;
      }
      await configureKey(control, name, { min_decryption_version: target });
      process.stdout.write(`raised ${name} min_decryption_version to ${target}: versions below it leave the JWKS and fail verification\n`);
      return;
    }
    fail(`unknown keys action "${action}"\n${USAGE}`);
  } finally {
    control.close();
  }
}

/** --since/--until: an RFC 3339 time, or a duration meaning that long ago ("90m", "2d"). */
function parseTime(value: string | undefined, option: string, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const ago = parseDuration(value);
  if (ago !== undefined) return now - ago * 1000;
  const time = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(time)) fail(`audit find: ${option} must be an RFC 3339 time (2026-11-30T21:00:00Z) or a duration ago (90m, 2d)`, 2);
  return time;
}

export function formatRecords(records: readonly AuditRecord[]): string {
  const rows = [['TIME', 'OUTCOME', 'CALLER', 'KEY', 'VERSION', 'KID', 'JTI', 'EXPIRES', 'REQUEST ID', 'RULE']];
  for (const r of records) {
    rows.push([
      r.time, r.outcome, r.caller, r.key, r.key_version === undefined ? '-' : `v${r.key_version}`, r.kid ?? '-', r.jti ?? '-',
      when(r.exp), r.request_id, r.rule ?? '-',
    ]);
  }
  return `${table(rows)}\n`;
}

async function runAudit(argv: string[]): Promise<void> {
  const [action, ...rest] = argv;
  if (action !== 'find') fail(`audit: ${action ? `unknown action "${action}"` : 'an action is required'} (find)\n${USAGE}`, 2);
  // A jti, kid or sub may begin with "-" (base64url): "--jti -x" is read as "--jti=-x", not as a missing value.
  const valued = new Set(['--config', '--jti', '--caller', '--key', '--kid', '--sub', '--outcome', '--since', '--until']);
  const args = rest.flatMap((arg, i) => (valued.has(rest[i - 1] ?? '') ? [] : valued.has(arg) && i + 1 < rest.length ? [`${arg}=${rest[i + 1]}`] : [arg]));
  const { values, positionals } = parseArgs({
    args, allowPositionals: true,
    options: {
      config: { type: 'string' }, jti: { type: 'string' }, caller: { type: 'string' }, key: { type: 'string' }, kid: { type: 'string' },
      sub: { type: 'string' }, outcome: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' }, json: { type: 'boolean', default: false },
    },
  });
  // Only the audit block is read: an investigator needs no Vault credentials to search the trail.
  const doc = readConfigDocument(values.config);
  const audit = parseAuditConfig((doc !== null && typeof doc === 'object' ? doc as Record<string, unknown> : {}).audit);
  let files: string[];
  if (positionals.length > 0) files = positionals;
  else if (audit?.file) files = rotatedFiles(audit.file);
  else fail('audit find: name the audit files, or give --config with audit.file', 2);
  const filter: AuditFilter = {
    jti: values.jti, caller: values.caller, key: values.key, kid: values.kid, outcome: values.outcome,
    since: parseTime(values.since, '--since'), until: parseTime(values.until, '--until'),
  };
  if (values.sub !== undefined) {
    if (!audit) fail('audit find: --sub needs --config with audit.subject_key_file (the secret sub is hashed with)', 2);
    filter.subHmac = subjectHmac(readSubjectKey(audit.subjectKeyFile), values.sub);
  }
  let found: Awaited<ReturnType<typeof findRecords>>;
  try {
    found = await findRecords(files, filter);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    fail(`audit find: cannot read ${e.path ?? 'an audit file'} (${e.code ?? e.message})`, 2);
  }
  const { records, skipped } = found;
  if (values.json) process.stdout.write(records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  else if (records.length > 0) process.stdout.write(formatRecords(records));
  if (skipped > 0) process.stderr.write(`signet: audit find: skipped ${skipped} line(s) that are not audit records (fragments of failed writes)\n`);
  if (records.length === 0) {
    process.stderr.write(`signet: audit find: no record matched in ${files.length} file(s)\n`);
    process.exitCode = 1;
  }
}

/** Node 24 runs the TypeScript sources directly; older runtimes fail on them in confusing ways. */
function checkRuntime(): void {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 24) fail(`Node.js ${process.versions.node} is too old: Signet needs Node.js 24 (run it through npx or npm scripts, which use the pinned one, after npm ci)`);
}

export async function main(argv: string[]): Promise<void> {
  checkRuntime();
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve': return await runServe(rest);
      case 'dev': return await runDev(rest);
      case 'keys': return await runKeys(rest);
      case 'audit': return await runAudit(rest);
      case undefined: case '-h': case '--help': case 'help':
        process.stdout.write(`${USAGE}\n`);
        return;
      default:
        fail(`unknown command "${command}"\n${USAGE}`, 2);
    }
  } catch (error) {
    if (error instanceof ConfigError || error instanceof SignetError) fail(error.message, 2);
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') fail(`the listen address is in use: ${(error as Error).message}; pick another with --listen`, 2);
    if ((error as Error).name === 'TypeError' && /parseArgs|ERR_PARSE_ARGS/.test(String((error as NodeJS.ErrnoException).code))) fail((error as Error).message, 2);
    throw error;
  }
}

await main(process.argv.slice(2));
