// The pure parts of Signet's entrance checks: the caller tokens file and the constant-time lookup, the Bearer
// header, the per-key caller policy, the Host check (DNS rebinding), the unix socket mode and group, the
// configuration rules that tie them together (non-loopback only with caller authentication), canonical
// base64url in tokens, and configuration errors that never echo a secret.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { buildConfig, loadConfig } from '../../src/config.ts';
import { ConfigError, TokenInvalidError } from '../../src/errors.ts';
import { parseToken } from '../../src/jwt/parse.ts';
import {
  authorizeKeyUse, bearerToken, CallerPolicyError, CallerTokens, findCaller, parseCallersConfig, parseKeyCallers, parseTokensFile, tokenDigest,
} from '../../src/security/callers.ts';
import { hostAllowed, hostOf, isLoopbackHost, parseAllowedHosts } from '../../src/security/hosts.ts';
import { DEFAULT_LISTEN_MODE, parseListenMode, resolveGroup } from '../../src/security/socket.ts';
import { createLogger } from '../../src/observability/logger.ts';

const ENV = { VAULT_TOKEN: 'hvs.unit-test-token' };
const KEY = { name: 'app', issuer: 'https://issuer.test' };
const TOKEN_A = 'tok-A-0123456789abcdef';
const TOKEN_B = 'tok-B-0123456789abcdef';

/** The ConfigError `fn` throws (fails the test if it throws anything else, or nothing). */
function thrownConfigError(fn: () => unknown): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  return caught;
}

function configError(fn: () => unknown, field: string, pattern?: RegExp): ConfigError {
  const caught = thrownConfigError(fn);
  assert.equal(caught.field, field);
  assert.ok(caught.message.includes(field), caught.message);
  if (pattern) assert.match(caught.message, pattern);
  return caught;
}

describe('caller tokens file', () => {
  test('one token per line, optionally name:token; blank lines and comments skipped; CRLF accepted', () => {
    const entries = parseTokensFile(`# callers\n\nsvc-a:${TOKEN_A}\r\n  ${TOKEN_B}  \nsvc-a:${TOKEN_A}x\n`);
    assert.equal(entries.length, 3);
    assert.deepEqual(entries.map((e) => e.name), ['svc-a', undefined, 'svc-a']);
    assert.deepEqual(entries[0]!.digest, tokenDigest(TOKEN_A));
    assert.deepEqual(entries[1]!.digest, tokenDigest(TOKEN_B));
  });

  test('keeps digests only, never the tokens themselves', () => {
    const entries = parseTokensFile(`svc-a:${TOKEN_A}\n`);
    assert.ok(!JSON.stringify(entries).includes(TOKEN_A));
    assert.deepEqual(Object.keys(entries[0]!).sort(), ['digest', 'name']);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['empty file', '', /holds no token/],
    ['only comments', '# nothing\n\n', /holds no token/],
    ['short token', `svc:short-SECRET-1`, /line 1: the token is shorter than 16 characters/],
    ['bad name', `bad name!:${TOKEN_A}-SECRET`, /line 1: a caller name is/],
    ['bad characters', `svc:${TOKEN_A}"SECRET"`, /line 1: a token may hold only/],
    ['duplicate token', `# x\nsvc-a:${TOKEN_A}\nsvc-b:${TOKEN_A}`, /line 3: the same token as line 2/],
  ];
  for (const [name, text, pattern] of bad) {
    test(`refused, naming the line but never its content: ${name}`, () => {
      const error = configError(() => parseTokensFile(text), 'callers.tokens_file', pattern);
      assert.ok(!/SECRET|tok-A/.test(error.message), error.message);
    });
  }

  test('findCaller compares digests and finds the right entry (first match, every entry compared)', () => {
    const entries = parseTokensFile(`svc-a:${TOKEN_A}\nsvc-b:${TOKEN_B}\n${TOKEN_B}x\n`);
    assert.equal(findCaller(TOKEN_A, entries)?.name, 'svc-a');
    assert.equal(findCaller(TOKEN_B, entries)?.name, 'svc-b');
    assert.deepEqual(findCaller(`${TOKEN_B}x`, entries), entries[2]);
    assert.equal(findCaller(TOKEN_A.slice(0, -1), entries), undefined);
    assert.equal(findCaller(`${TOKEN_A} `, entries), undefined);
    assert.equal(findCaller('', entries), undefined);
    assert.equal(findCaller(TOKEN_A, []), undefined);
  });

  test('bearerToken: the RFC 6750 form only', () => {
    assert.equal(bearerToken(`Bearer ${TOKEN_A}`), TOKEN_A);
    assert.equal(bearerToken(`bearer  ${TOKEN_A} `), TOKEN_A);
    assert.equal(bearerToken('Bearer abc+/=='), 'abc+/==');
    for (const header of [undefined, '', TOKEN_A, `Basic ${TOKEN_A}`, 'Bearer', 'Bearer ', `Bearer ${TOKEN_A} extra`, `Bearer "${TOKEN_A}"`, `Bearer ${'a'.repeat(5000)}`]) {
      assert.equal(bearerToken(header), undefined, String(header));
    }
  });

  test('CallerTokens.authenticate: missing, malformed, wrong and right tokens', () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-callers-'));
    const file = join(dir, 'tokens');
    writeFileSync(file, `svc-a:${TOKEN_A}\n${TOKEN_B}\n`, { mode: 0o600 });
    const tokens = new CallerTokens(file, createLogger('silent'));
    tokens.load();
    assert.equal(tokens.size, 2);
    assert.deepEqual([...tokens.names()], ['svc-a']);
    assert.deepEqual(tokens.authenticate(`Bearer ${TOKEN_A}`), { ok: true, caller: { name: 'svc-a' } });
    assert.deepEqual(tokens.authenticate(`Bearer ${TOKEN_B}`), { ok: true, caller: { name: undefined } });
    const missing = tokens.authenticate(undefined);
    assert.equal(missing.ok, false);
    assert.equal(!missing.ok && missing.status, 401);
    assert.equal(!missing.ok && missing.reason, 'missing');
    for (const header of [`Bearer ${TOKEN_A}x`, `Basic ${TOKEN_A}`, TOKEN_A]) {
      const result = tokens.authenticate(header);
      assert.equal(!result.ok && result.reason, 'invalid', header);
    }
  });

  test('CallerTokens.authenticate: X-Vault-Token (Vault clients) when no Authorization is sent', () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-callers-'));
    const file = join(dir, 'tokens');
    writeFileSync(file, `svc-a:${TOKEN_A}\n`, { mode: 0o600 });
    const tokens = new CallerTokens(file, createLogger('silent'));
    tokens.load();
    assert.deepEqual(tokens.authenticate(undefined, TOKEN_A), { ok: true, caller: { name: 'svc-a' } });
    assert.deepEqual(tokens.authenticate('', TOKEN_A), { ok: true, caller: { name: 'svc-a' } });
    for (const header of [`${TOKEN_A}x`, `Bearer ${TOKEN_A}`, `${TOKEN_A} `, 'a'.repeat(5000)]) {
      const result = tokens.authenticate(undefined, header);
      assert.equal(!result.ok && result.reason, 'invalid', header);
      assert.equal(!result.ok && result.message, 'caller token not accepted (X-Vault-Token; callers.tokens_file)');
    }
    // Repeated headers arrive as a list: refused as missing, never half-read.
    assert.equal(tokens.authenticate(undefined, [TOKEN_A, TOKEN_A]).ok, false);
    // Authorization, when sent, is the one checked.
    assert.equal(tokens.authenticate(`Bearer ${TOKEN_A}x`, TOKEN_A).ok, false);
    assert.equal(tokens.authenticate(`Bearer ${TOKEN_A}`, 'wrong-token-wrong-token').ok, true);
  });

  test('CallerTokens: a file that becomes unusable fails closed; fixing it restores callers', () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-callers-'));
    const file = join(dir, 'tokens');
    writeFileSync(file, `svc-a:${TOKEN_A}\n`);
    const tokens = new CallerTokens(file, createLogger('silent'));
    tokens.load();
    writeFileSync(file, 'svc-a:short\n');
    tokens.reload();
    const refused = tokens.authenticate(`Bearer ${TOKEN_A}`);
    assert.equal(refused.ok, false);
    assert.equal(!refused.ok && refused.status, 503);
    writeFileSync(file, `svc-a:${TOKEN_B}\n`);
    tokens.reload();
    assert.equal(tokens.authenticate(`Bearer ${TOKEN_A}`).ok, false, 'the rotated-out token stays refused');
    assert.equal(tokens.authenticate(`Bearer ${TOKEN_B}`).ok, true);
  });

  test('an unreadable file at start-up is a configuration error naming the path, not the content', () => {
    const tokens = new CallerTokens('/nonexistent/signet-tokens', createLogger('silent'));
    configError(() => tokens.load(), 'callers.tokens_file', /cannot read \/nonexistent\/signet-tokens \(ENOENT\)/);
  });
});

describe('per-key caller policy (keys[].callers)', () => {
  const key = { name: 'payments', callers: ['svc-a', 'svc-b'] };
  test('a listed caller may sign; a key without a list lets every caller sign', () => {
    assert.doesNotThrow(() => authorizeKeyUse(key, { name: 'svc-a' }));
    assert.doesNotThrow(() => authorizeKeyUse({ name: 'open' }, { name: 'anyone' }));
    assert.doesNotThrow(() => authorizeKeyUse({ name: 'open' }, null));
    assert.doesNotThrow(() => authorizeKeyUse(undefined, null));
  });
  test('an unlisted, unnamed or absent caller is refused with 403 naming the rule', () => {
    for (const [caller, who] of [[{ name: 'svc-c' }, 'caller "svc-c"'], [{}, 'a caller without a name'], [null, 'a caller without a name']] as const) {
      assert.throws(() => authorizeKeyUse(key, caller), (error: unknown) => {
        assert.ok(error instanceof CallerPolicyError);
        assert.equal(error.status, 403);
        assert.equal(error.message, `${who} may not sign with key "payments" (keys[].callers)`);
        return true;
      });
    }
  });
});

describe('Host check (DNS rebinding)', () => {
  const none = new Set<string>();
  test('loopback hosts, with or without a port, are answered', () => {
    for (const host of ['127.0.0.1', '127.0.0.1:8250', '127.9.8.7:1', 'localhost', 'LOCALHOST:8250', '[::1]', '[::1]:8250', '[0:0:0:0:0:0:0:1]:80', '[::ffff:7f00:1]:8250']) {
      assert.equal(hostAllowed(host, none), true, host);
    }
  });
  test('anything else is refused: other names and addresses, rebinding tricks, malformed or missing headers', () => {
    for (const host of [
      undefined, '', 'attacker.example', 'attacker.example:8250', 'localhost.attacker.example', '127.0.0.1.attacker.example',
      'localhost.', '128.0.0.1', '0.0.0.0:8250', '10.0.0.1', '[::2]', '[::]:8250', '::1', '127.0.0.1:8250:1', 'user@127.0.0.1',
      '127.0.0.1/x', '127.0.0.1 ', '[::1%25lo]', 'x'.repeat(400),
    ]) {
      assert.equal(hostAllowed(host, none), false, String(host));
    }
  });
  test('allowed_hosts adds names and addresses, any port, case-insensitive', () => {
    const allowed = new Set(parseAllowedHosts(['signet.internal', 'Signet.Svc.Cluster.Local', '10.1.2.3', '[fd00::1]']));
    assert.deepEqual([...allowed], ['signet.internal', 'signet.svc.cluster.local', '10.1.2.3', 'fd00::1']);
    for (const host of ['signet.internal', 'SIGNET.internal:8250', 'signet.svc.cluster.local:1', '10.1.2.3:8250', '[fd00::1]:8250', '127.0.0.1']) {
      assert.equal(hostAllowed(host, allowed), true, host);
    }
    for (const host of ['evil.signet.internal', 'signet.internal.evil', '10.1.2.4']) assert.equal(hostAllowed(host, allowed), false, host);
  });
  test('hostOf and isLoopbackHost', () => {
    assert.equal(hostOf('[::1]:80'), '::1');
    assert.equal(hostOf('Example.COM:80'), 'example.com');
    assert.equal(isLoopbackHost('127.255.255.255'), true);
    assert.equal(isLoopbackHost('::1'), true);
    assert.equal(isLoopbackHost('example.com'), false);
  });
  test('allowed_hosts entries must be bare names or addresses', () => {
    for (const [entry, index] of [['http://signet.internal', 0], ['signet.internal:8250', 0], ['*.internal', 0], ['signet/x', 0], ['', 0]] as const) {
      configError(() => parseAllowedHosts([entry]), `allowed_hosts[${index}]`);
    }
    configError(() => parseAllowedHosts('signet.internal'), 'allowed_hosts', /list/);
    assert.deepEqual(parseAllowedHosts(undefined), []);
  });
});

describe('configuration: callers, listen beyond loopback, unix socket mode and group', () => {
  const doc = (extra: Record<string, unknown> = {}) => ({ keys: [KEY], ...extra });
  const callers = { tokens_file: '/run/signet/callers' };

  test('defaults: no caller authentication, no extra hosts, socket mode 0660', () => {
    const config = buildConfig(doc(), ENV);
    assert.equal(config.callers, undefined);
    assert.deepEqual(config.allowedHosts, []);
    assert.equal(config.listenMode, 0o660);
    assert.equal(DEFAULT_LISTEN_MODE, 0o660);
    assert.equal(config.listenGroup, undefined);
  });

  test('a non-loopback listen is refused without caller authentication, with a message that says what to do', () => {
    for (const listen of ['0.0.0.0:8250', '10.0.0.5:8250', '[::]:8250']) {
      configError(() => buildConfig(doc({ listen }), ENV), 'listen', /not a loopback address.*configure caller authentication \(callers\.tokens_file\)/);
      configError(() => buildConfig(doc(), { ...ENV, SIGNET_LISTEN: listen }), 'listen', /callers\.tokens_file/);
    }
  });

  test('a non-loopback listen is accepted with caller authentication', () => {
    const config = buildConfig(doc({ listen: '0.0.0.0:8250', callers, allowed_hosts: ['signet.internal'] }), ENV);
    assert.equal(config.listen, '0.0.0.0:8250');
    assert.deepEqual(config.callers, { tokensFile: '/run/signet/callers' });
    assert.deepEqual(config.allowedHosts, ['signet.internal']);
  });

  test('callers: strict fields', () => {
    configError(() => buildConfig(doc({ callers: {} }), ENV), 'callers.tokens_file', /is required/);
    configError(() => buildConfig(doc({ callers: { tokens_file: '/x', tokens: ['abc'] } }), ENV), 'callers.tokens', /unknown field/);
    configError(() => buildConfig(doc({ callers: '/x' }), ENV), 'callers', /mapping/);
    assert.equal(parseCallersConfig(undefined), undefined);
  });

  test('keys[].callers: a list of names, and only with caller authentication', () => {
    const config = buildConfig(doc({ callers, keys: [{ ...KEY, callers: ['svc-a', 'svc-b'] }] }), ENV);
    assert.deepEqual(config.keys[0]!.callers, ['svc-a', 'svc-b']);
    assert.equal(buildConfig(doc({ callers }), ENV).keys[0]!.callers, undefined);
    configError(() => buildConfig(doc({ keys: [{ ...KEY, callers: ['svc-a'] }] }), ENV), 'keys[0].callers', /needs caller authentication/);
    configError(() => buildConfig(doc({ callers, keys: [{ ...KEY, callers: [] }] }), ENV), 'keys[0].callers', /non-empty list/);
    configError(() => buildConfig(doc({ callers, keys: [{ ...KEY, callers: ['bad name'] }] }), ENV), 'keys[0].callers');
    assert.equal(parseKeyCallers(undefined, 'x'), undefined);
  });

  test('listen_mode: an octal string, for unix sockets, never writable by others without caller authentication', () => {
    const unix = 'unix:/run/signet/signet.sock';
    assert.equal(buildConfig(doc({ listen: unix, listen_mode: '0600' }), ENV).listenMode, 0o600);
    assert.equal(buildConfig(doc({ listen: unix, listen_mode: '660' }), ENV).listenMode, 0o660);
    configError(() => buildConfig(doc({ listen: unix, listen_mode: 660 }), ENV), 'listen_mode', /octal string.*YAML reads 0660 unquoted/);
    configError(() => buildConfig(doc({ listen: unix, listen_mode: '0999' }), ENV), 'listen_mode', /octal mode/);
    configError(() => buildConfig(doc({ listen: unix, listen_mode: 'rw-rw----' }), ENV), 'listen_mode');
    configError(() => buildConfig(doc({ listen_mode: '0600' }), ENV), 'listen_mode', /only to a unix socket/);
    configError(() => buildConfig(doc({ listen: unix, listen_mode: '0666' }), ENV), 'listen_mode', /every local user/);
    assert.equal(buildConfig(doc({ listen: unix, listen_mode: '0666', callers }), ENV).listenMode, 0o666);
    assert.equal(parseListenMode(undefined, '127.0.0.1:1', false), 0o660);
  });

  test('listen_group: for unix sockets; names and gids resolve, unknown names are refused', () => {
    assert.equal(buildConfig(doc({ listen: 'unix:/s.sock', listen_group: 'signet' }), ENV).listenGroup, 'signet');
    configError(() => buildConfig(doc({ listen_group: 'signet' }), ENV), 'listen_group', /only to a unix socket/);
    assert.equal(resolveGroup('1234'), 1234);
    const dir = mkdtempSync(join(tmpdir(), 'signet-group-'));
    writeFileSync(join(dir, 'group'), 'root:x:0:\nsignet-callers:x:4321:app\n');
    assert.equal(resolveGroup('signet-callers', join(dir, 'group')), 4321);
    assert.equal(resolveGroup('root', join(dir, 'group')), 0);
    configError(() => resolveGroup('no-such-group-signet', join(dir, 'group')), 'listen_group', /no group named "no-such-group-signet"/);
    // The process's own primary group resolves through the system's group database.
    const own = userInfo();
    assert.equal(typeof resolveGroup(String(own.gid)), 'number');
  });
});

describe('configuration errors never echo a secret', () => {
  const SECRET = 'hvs.SECRET-never-echo-0123456789';
  const cases: Array<[string, () => unknown]> = [
    ['an unknown field holding a token', () => buildConfig({ keys: [KEY], vault: { token: SECRET } }, ENV)],
    ['a token inlined in vault.auth', () => buildConfig({ keys: [KEY], vault: { auth: { method: 'token', token: SECRET } } }, ENV)],
    ['a Vault address with credentials (env)', () => buildConfig({ keys: [KEY] }, { ...ENV, VAULT_ADDR: `https://signet:${SECRET}@vault.example:8200` })],
    ['a Vault address with credentials (file)', () => buildConfig({ keys: [KEY], vault: { address: `https://${SECRET}@vault.example` } }, ENV)],
    ['VAULT_SKIP_VERIFY set to a secret by mistake', () => buildConfig({ keys: [KEY] }, { ...ENV, VAULT_SKIP_VERIFY: SECRET })],
    ['a secret in a duration field', () => buildConfig({ keys: [{ ...KEY, max_ttl: SECRET }] }, ENV)],
    ['a secret as a caller name', () => buildConfig({ keys: [{ ...KEY, callers: [`${SECRET} x`] }], callers: { tokens_file: '/x' } }, ENV)],
    ['a secret in the tokens file', () => parseTokensFile(`svc:${SECRET}"\n`)],
    ['a secret as the tokens file\'s only, too short line', () => parseTokensFile('svc:hvs.SECRET\n')],
  ];
  for (const [name, fn] of cases) {
    test(name, () => {
      const caught = thrownConfigError(fn);
      assert.ok(!caught.message.includes('SECRET'), caught.message);
    });
  }

  test('a YAML syntax error near a secret quotes the position, not the line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-yaml-'));
    const file = join(dir, 'signet.yaml');
    for (const text of [
      `vault:\n  auth:\n    token_file: "${SECRET}\nkeys: []\n`,
      `vault: { auth: { token_file: ${SECRET}: x } }\n`,
      `keys:\n  - name: app\n     issuer: ${SECRET}\n`,
      `keys: [${SECRET}\n`,
    ]) {
      writeFileSync(file, text);
      let caught: unknown;
      try {
        loadConfig(file, ENV);
      } catch (error) {
        caught = error;
      }
      assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
      assert.ok(!caught.message.includes('SECRET'), caught.message);
    }
  });
});

describe('canonical base64url in presented tokens', () => {
  const seg = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const header = seg({ alg: 'ES256', kid: 'k' });
  const payload = seg({ sub: 'x' });
  // 64 bytes → 86 characters, whose last one carries 2 bits of data and 4 spare bits.
  const signature = Buffer.alloc(64, 7).toString('base64url');

  test('a canonical token parses', () => {
    assert.doesNotThrow(() => parseToken(`${header}.${payload}.${signature}`));
  });

  test('the same bytes spelled with stray bits in the last character are refused', () => {
    const last = signature.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twins = [...alphabet].filter((c) => c !== last && Buffer.from(signature.slice(0, -1) + c, 'base64url').equals(Buffer.from(signature, 'base64url')));
    assert.ok(twins.length > 0, 'the decoder does ignore the spare bits (the reason for the check)');
    for (const c of twins) {
      assert.throws(() => parseToken(`${header}.${payload}.${signature.slice(0, -1)}${c}`), (error: unknown) => {
        assert.ok(error instanceof TokenInvalidError);
        assert.match(error.message, /^signature: not canonical base64url/);
        return true;
      });
    }
  });

  test('a segment of impossible length (1 mod 4) is refused', () => {
    const stretch = (segment: string) => segment + 'A'.repeat((5 - (segment.length % 4)) % 4 || 4);
    assert.equal(stretch(signature).length % 4, 1);
    assert.equal(stretch(payload).length % 4, 1);
    assert.throws(() => parseToken(`${header}.${payload}.${stretch(signature)}`), /signature: not canonical base64url/);
    assert.throws(() => parseToken(`${header}.${stretch(payload)}.${signature}`), /payload: not canonical base64url/);
  });
});
