import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../../src/errors.ts';
import { DEFAULTS, buildConfig } from '../../src/config.ts';
import { isLoopbackListen, splitHostPort } from '../../src/security/hosts.ts';

const ENV = { VAULT_TOKEN: 'hvs.test-token' };
const KEY = { name: 'signing', issuer: 'https://issuer.example' };

function doc(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { keys: [KEY], ...extra };
}

/** Asserts a ConfigError whose field is `field` and whose message names it. */
function refused(fn: () => unknown, field: string, pattern?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    assert.equal(error.field, field);
    assert.ok(error.message.includes(field), `message names ${field}: ${error.message}`);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

describe('buildConfig: defaults', () => {
  test('a minimal file gets every documented default', () => {
    const config = buildConfig(doc(), ENV);
    assert.equal(config.listen, '127.0.0.1:8250');
    assert.equal(config.vault.address, 'http://127.0.0.1:8200');
    assert.equal(config.vault.mount, 'transit');
    assert.equal(config.vault.timeout, 5);
    assert.equal(config.vault.signTimeout, 2);
    assert.equal(config.vault.skipVerify, false);
    assert.equal(config.vault.namespace, undefined);
    assert.deepEqual(config.vault.auth, { method: 'token', tokenFile: undefined, token: 'hvs.test-token' });
    assert.equal(config.defaultKey, 'signing');
    assert.deepEqual(config.jwks, { maxAge: 300 });
    assert.equal(config.refreshInterval, 30);
    assert.equal(config.clockSkew, 60);
    assert.equal(config.bodyLimit, 16 * 1024);
    assert.equal(config.logLevel, 'info');
    assert.equal(config.publicUrl, undefined);
    assert.equal(config.keys.length, 1);
    const key = config.keys[0]!;
    assert.equal(key.name, 'signing');
    assert.equal(key.alg, undefined, 'no alg: the key type default');
    assert.equal(key.issuer, 'https://issuer.example');
    assert.equal(key.audiences, undefined, 'no audience allow-list');
    assert.equal(key.defaultTtl, 300);
    assert.equal(key.maxTtl, 3600);
    assert.equal(key.publishDelay, 600);
    assert.deepEqual(key.callerClaims, [], 'callers may set no reserved claim');
  });

  test('the default publish_delay satisfies the rule it is checked against', () => {
    assert.ok(DEFAULTS.publishDelay > DEFAULTS.jwksMaxAge + DEFAULTS.refreshInterval + DEFAULTS.clockSkew);
  });

  test('the default publish_delay grows when jwks.max_age, refresh_interval or clock_skew would break it', () => {
    const config = buildConfig(doc({ jwks: { max_age: '15m' }, refresh_interval: '1m', clock_skew: '2m' }), ENV);
    assert.ok(config.keys[0]!.publishDelay > 900 + 60 + 120, `publish_delay ${config.keys[0]!.publishDelay}`);
  });

  test('the first key is the default key unless default_key says otherwise', () => {
    const keys = [KEY, { name: 'other', issuer: 'https://o.example' }];
    assert.equal(buildConfig({ keys }, ENV).defaultKey, 'signing');
    assert.equal(buildConfig({ keys, default_key: 'other' }, ENV).defaultKey, 'other');
  });

  test('durations are parsed: strings and numbers of seconds', () => {
    const config = buildConfig({
      keys: [{ ...KEY, default_ttl: '15m', max_ttl: '1h30m', publish_delay: 3600 }],
      vault: { timeout: '10s', sign_timeout: 3 },
      refresh_interval: '45s', clock_skew: '0s',
    }, ENV);
    assert.equal(config.keys[0]!.defaultTtl, 900);
    assert.equal(config.keys[0]!.maxTtl, 5400);
    assert.equal(config.keys[0]!.publishDelay, 3600);
    assert.equal(config.vault.timeout, 10);
    assert.equal(config.vault.signTimeout, 3);
    assert.equal(config.refreshInterval, 45);
    assert.equal(config.clockSkew, 0);
  });

  test('a full key entry', () => {
    const config = buildConfig({ keys: [{ ...KEY, alg: 'PS256', audiences: ['api', 'web'], caller_claims: ['jti', 'exp'] }] }, ENV);
    const key = config.keys[0]!;
    assert.equal(key.alg, 'PS256');
    assert.deepEqual(key.audiences, ['api', 'web']);
    assert.deepEqual(key.callerClaims, ['jti', 'exp']);
  });

  test('keys may be omitted only when the caller says they are not required', () => {
    refused(() => buildConfig({}, ENV), 'keys');
    refused(() => buildConfig({ keys: [] }, ENV), 'keys');
    const config = buildConfig({}, ENV, { keysRequired: false });
    assert.deepEqual(config.keys, []);
  });

  test('a trailing slash on the Vault address is dropped', () => {
    assert.equal(buildConfig(doc({ vault: { address: 'https://vault.example:8200/' } }), ENV).vault.address, 'https://vault.example:8200');
  });
});

describe('buildConfig: unknown fields are refused, naming them', () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['top level', doc({ lissten: '127.0.0.1:1' }), 'lissten'],
    ['vault', doc({ vault: { adress: 'http://x' } }), 'vault.adress'],
    ['vault.auth', doc({ vault: { auth: { method: 'token', token: 'x' } } }), 'vault.auth.token'],
    ['vault.auth approle', doc({ vault: { auth: { method: 'approle', role_id: 'r', secret_id: 's' } } }), 'vault.auth.secret_id'],
    ['vault.auth kubernetes', doc({ vault: { auth: { method: 'kubernetes', role: 'r', jwt: 'x' } } }), 'vault.auth.jwt'],
    ['jwks', doc({ jwks: { max_age: '5m', maxage: 1 } }), 'jwks.maxage'],
    ['keys[0]', { keys: [{ ...KEY, ttl: '5m' }] }, 'keys[0].ttl'],
    ['keys[1]', { keys: [KEY, { name: 'b', issuer: 'i', audience: 'x' }] }, 'keys[1].audience'],
  ];
  for (const [where, input, field] of cases) {
    test(`an unknown field in ${where}`, () => refused(() => buildConfig(input, ENV), field, /unknown field/));
  }

  test('the refusal lists the known fields', () => {
    assert.throws(() => buildConfig(doc({ vault: { adress: 'x' } }), ENV), /known here: .*address/);
  });
});

describe('buildConfig: field errors', () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['bad duration', { keys: [{ ...KEY, max_ttl: '1 hour' }] }, 'keys[0].max_ttl'],
    ['bad default_ttl', { keys: [{ ...KEY, default_ttl: '-5m' }] }, 'keys[0].default_ttl'],
    ['default_ttl 0', { keys: [{ ...KEY, default_ttl: 0 }] }, 'keys[0].default_ttl'],
    ['max_ttl below default_ttl', { keys: [{ ...KEY, default_ttl: '1h', max_ttl: '30m' }] }, 'keys[0].max_ttl'],
    ['bad vault.timeout', doc({ vault: { timeout: '5 s' } }), 'vault.timeout'],
    ['vault.timeout 0', doc({ vault: { timeout: 0 } }), 'vault.timeout'],
    ['vault.sign_timeout 0', doc({ vault: { sign_timeout: '0s' } }), 'vault.sign_timeout'],
    ['bad refresh_interval', doc({ refresh_interval: 'often' }), 'refresh_interval'],
    ['refresh_interval 0', doc({ refresh_interval: 0 }), 'refresh_interval'],
    ['bad clock_skew', doc({ clock_skew: '1.5m' }), 'clock_skew'],
    ['bad jwks.max_age', doc({ jwks: { max_age: 'forever' } }), 'jwks.max_age'],
    ['key name missing', { keys: [{ issuer: 'i' }] }, 'keys[0].name'],
    ['key name with a slash', { keys: [{ ...KEY, name: 'a/b' }] }, 'keys[0].name'],
    ['issuer missing', { keys: [{ name: 'k' }] }, 'keys[0].issuer'],
    ['unknown alg', { keys: [{ ...KEY, alg: 'none' }] }, 'keys[0].alg'],
    ['audiences not a list', { keys: [{ ...KEY, audiences: 'api' }] }, 'keys[0].audiences'],
    ['empty audiences', { keys: [{ ...KEY, audiences: [] }] }, 'keys[0].audiences'],
    ['caller_claims not registered', { keys: [{ ...KEY, caller_claims: ['sub'] }] }, 'keys[0].caller_claims'],
    ['key not a mapping', { keys: ['signing'] }, 'keys[0]'],
    ['keys not a list', { keys: { name: 'x' } }, 'keys'],
    ['vault not a mapping', doc({ vault: 'http://x' }), 'vault'],
    ['bad vault.address', doc({ vault: { address: 'ftp://vault' } }), 'vault.address'],
    ['vault.address not a URL', doc({ vault: { address: 'vault:8200:x' } }), 'vault.address'],
    ['bad vault.mount', doc({ vault: { mount: 'tran sit' } }), 'vault.mount'],
    ['body_limit too small', doc({ body_limit: 100 }), 'body_limit'],
    ['body_limit not a number', doc({ body_limit: '16k' }), 'body_limit'],
    ['log_level', doc({ log_level: 'verbose' }), 'log_level'],
    ['auth method', doc({ vault: { auth: { method: 'userpass' } } }), 'vault.auth.method'],
    ['listen not host:port', doc({ listen: '127.0.0.1' }), 'listen'],
    ['listen port too high', doc({ listen: '127.0.0.1:70000' }), 'listen'],
  ];
  for (const [what, input, field] of cases) {
    test(`${what} → ${field}`, () => refused(() => buildConfig(input, ENV), field));
  }

  test('a bad duration says what a duration looks like', () => {
    refused(() => buildConfig({ keys: [{ ...KEY, max_ttl: '1 hour' }] }, ENV), 'keys[0].max_ttl', /"15m"/);
  });

  test('a duplicate key name is refused at its second occurrence', () => {
    refused(() => buildConfig({ keys: [KEY, { name: 'other', issuer: 'i' }, { ...KEY }] }, ENV), 'keys[2].name', /"signing" is configured twice/);
  });

  test('default_key must be one of the configured keys', () => {
    refused(() => buildConfig(doc({ default_key: 'missing' }), ENV), 'default_key', /"missing"/);
  });
});

describe('buildConfig: publish_delay', () => {
  // Defaults: jwks.max_age 300 + refresh_interval 30 + clock_skew 60 = 390.
  test('at or below jwks.max_age + refresh_interval + clock_skew it is refused, naming the sum', () => {
    for (const delay of [0, 60, 389, 390]) {
      refused(() => buildConfig({ keys: [{ ...KEY, publish_delay: delay }] }, ENV), 'keys[0].publish_delay', /390s/);
    }
  });

  test('one second above the sum is accepted', () => {
    assert.equal(buildConfig({ keys: [{ ...KEY, publish_delay: 391 }] }, ENV).keys[0]!.publishDelay, 391);
  });

  test('the sum follows the configured jwks.max_age, refresh_interval and clock_skew', () => {
    const base = { jwks: { max_age: '10m' }, refresh_interval: '1m', clock_skew: '30s' };
    refused(() => buildConfig({ ...base, keys: [{ ...KEY, publish_delay: '11m' }] }, ENV), 'keys[0].publish_delay', /690s/);
    assert.equal(buildConfig({ ...base, keys: [{ ...KEY, publish_delay: '12m' }] }, ENV).keys[0]!.publishDelay, 720);
  });
});

describe('buildConfig: listen', () => {
  for (const listen of ['127.0.0.1:8250', '127.1.2.3:1', 'localhost:8250', '[::1]:8250', 'unix:/run/signet.sock']) {
    test(`${listen} is accepted`, () => {
      assert.equal(buildConfig(doc({ listen }), ENV).listen, listen);
    });
  }

  for (const listen of ['0.0.0.0:8250', '10.0.0.5:8250', '[::]:8250', '[2001:db8::1]:8250', 'example.com:8250', '128.0.0.1:80']) {
    test(`${listen} is refused as not loopback`, () => {
      refused(() => buildConfig(doc({ listen }), ENV), 'listen', /not a loopback address/);
    });
  }

  test('SIGNET_LISTEN overrides the file, and is checked like it', () => {
    assert.equal(buildConfig(doc({ listen: '127.0.0.1:1' }), { ...ENV, SIGNET_LISTEN: '127.0.0.1:9999' }).listen, '127.0.0.1:9999');
    assert.equal(buildConfig(doc(), { ...ENV, SIGNET_LISTEN: 'unix:/tmp/s.sock' }).listen, 'unix:/tmp/s.sock');
    refused(() => buildConfig(doc(), { ...ENV, SIGNET_LISTEN: '0.0.0.0:8250' }), 'listen', /loopback/);
  });

  test('isLoopbackListen and splitHostPort', () => {
    assert.equal(isLoopbackListen('unix:/x.sock'), true);
    assert.equal(isLoopbackListen('127.0.0.1:1'), true);
    assert.equal(isLoopbackListen('[::1]:1'), true);
    assert.equal(isLoopbackListen('192.168.1.1:1'), false);
    assert.equal(isLoopbackListen('127.example.com:1'), false);
    assert.deepEqual(splitHostPort('[::1]:8250'), { host: '::1', port: 8250 });
    assert.deepEqual(splitHostPort('localhost:80'), { host: 'localhost', port: 80 });
  });
});

describe('buildConfig: environment', () => {
  test('VAULT_ADDR overrides vault.address', () => {
    const config = buildConfig(doc({ vault: { address: 'http://file.example:8200' } }), { ...ENV, VAULT_ADDR: 'https://env.example:8200/' });
    assert.equal(config.vault.address, 'https://env.example:8200');
  });

  test('a bad VAULT_ADDR is reported as VAULT_ADDR', () => {
    refused(() => buildConfig(doc(), { ...ENV, VAULT_ADDR: 'not a url' }), 'VAULT_ADDR');
  });

  test('an empty variable counts as unset', () => {
    const config = buildConfig(doc({ vault: { address: 'http://file.example:8200' }, listen: '127.0.0.1:7' }), { ...ENV, VAULT_ADDR: '', SIGNET_LISTEN: '' });
    assert.equal(config.vault.address, 'http://file.example:8200');
    assert.equal(config.listen, '127.0.0.1:7');
  });

  test('VAULT_NAMESPACE, VAULT_CACERT, VAULT_CLIENT_CERT, VAULT_CLIENT_KEY override the file', () => {
    const file = doc({ vault: { namespace: 'file-ns', ca_cert: '/file/ca.pem', client_cert: '/file/c.pem', client_key: '/file/k.pem' } });
    const fromFile = buildConfig(file, ENV).vault;
    assert.deepEqual([fromFile.namespace, fromFile.caCert, fromFile.clientCert, fromFile.clientKey], ['file-ns', '/file/ca.pem', '/file/c.pem', '/file/k.pem']);
    const fromEnv = buildConfig(file, {
      ...ENV, VAULT_NAMESPACE: 'env-ns', VAULT_CACERT: '/env/ca.pem', VAULT_CLIENT_CERT: '/env/c.pem', VAULT_CLIENT_KEY: '/env/k.pem',
    }).vault;
    assert.deepEqual([fromEnv.namespace, fromEnv.caCert, fromEnv.clientCert, fromEnv.clientKey], ['env-ns', '/env/ca.pem', '/env/c.pem', '/env/k.pem']);
  });

  test('SIGNET_LOG_LEVEL overrides log_level', () => {
    assert.equal(buildConfig(doc({ log_level: 'warn' }), { ...ENV, SIGNET_LOG_LEVEL: 'debug' }).logLevel, 'debug');
  });

  const truthy = ['1', 't', 'true', 'TRUE', 'True', 'yes'];
  const falsy = ['0', 'f', 'false', 'FALSE', 'False', 'no', ''];
  for (const value of truthy) {
    test(`VAULT_SKIP_VERIFY=${JSON.stringify(value)} disables TLS verification`, () => {
      assert.equal(buildConfig(doc(), { ...ENV, VAULT_SKIP_VERIFY: value }).vault.skipVerify, true);
    });
  }
  for (const value of falsy) {
    test(`VAULT_SKIP_VERIFY=${JSON.stringify(value)} keeps TLS verification on`, () => {
      assert.equal(buildConfig(doc(), { ...ENV, VAULT_SKIP_VERIFY: value }).vault.skipVerify, false);
    });
  }
  test('VAULT_SKIP_VERIFY unset keeps TLS verification on', () => {
    assert.equal(buildConfig(doc(), ENV).vault.skipVerify, false);
  });
  for (const value of ['maybe', 'on', 'off', '2', ' true', 'truee']) {
    test(`VAULT_SKIP_VERIFY=${JSON.stringify(value)} is refused, not guessed`, () => {
      refused(() => buildConfig(doc(), { ...ENV, VAULT_SKIP_VERIFY: value }), 'VAULT_SKIP_VERIFY');
    });
  }

  test('the environment is the one passed in, not process.env', () => {
    const before = process.env.VAULT_ADDR;
    process.env.VAULT_ADDR = 'http://from-process-env.example:1';
    try {
      assert.equal(buildConfig(doc(), ENV).vault.address, 'http://127.0.0.1:8200');
    } finally {
      if (before === undefined) delete process.env.VAULT_ADDR;
      else process.env.VAULT_ADDR = before;
    }
  });
});

describe('buildConfig: Vault auth', () => {
  test('token auth needs VAULT_TOKEN or token_file', () => {
    refused(() => buildConfig(doc(), {}), 'vault.auth', /VAULT_TOKEN/);
    refused(() => buildConfig(doc(), { VAULT_TOKEN: '' }), 'vault.auth');
  });

  test('token auth from VAULT_TOKEN', () => {
    assert.deepEqual(buildConfig(doc(), { VAULT_TOKEN: 'hvs.x' }).vault.auth, { method: 'token', token: 'hvs.x', tokenFile: undefined });
  });

  test('token auth from a token file (Vault Agent); the file wins over VAULT_TOKEN', () => {
    const withFile = doc({ vault: { auth: { method: 'token', token_file: '/run/vault/token' } } });
    assert.deepEqual(buildConfig(withFile, {}).vault.auth, { method: 'token', tokenFile: '/run/vault/token', token: undefined });
    assert.deepEqual(buildConfig(withFile, { VAULT_TOKEN: 'hvs.x' }).vault.auth, { method: 'token', tokenFile: '/run/vault/token', token: undefined });
  });

  test('the token value never appears in a configuration error', () => {
    assert.throws(() => buildConfig(doc({ lissten: 1 }), { VAULT_TOKEN: 'hvs.super-secret' }), (error: Error) => !error.message.includes('super-secret'));
  });

  test('approle: role_id or role_id_file, default mount approle', () => {
    assert.deepEqual(buildConfig(doc({ vault: { auth: { method: 'approle', role_id: 'rid', secret_id_file: '/run/sid' } } }), {}).vault.auth, {
      method: 'approle', mount: 'approle', roleId: 'rid', roleIdFile: undefined, secretIdFile: '/run/sid',
    });
    assert.deepEqual(buildConfig(doc({ vault: { auth: { method: 'approle', mount: 'ar', role_id_file: '/run/rid' } } }), {}).vault.auth, {
      method: 'approle', mount: 'ar', roleId: undefined, roleIdFile: '/run/rid', secretIdFile: undefined,
    });
    refused(() => buildConfig(doc({ vault: { auth: { method: 'approle' } } }), {}), 'vault.auth.role_id');
  });

  test('kubernetes: role required, service account token by default, default mount kubernetes', () => {
    assert.deepEqual(buildConfig(doc({ vault: { auth: { method: 'kubernetes', role: 'signet' } } }), {}).vault.auth, {
      method: 'kubernetes', mount: 'kubernetes', role: 'signet', tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token',
    });
    assert.deepEqual(buildConfig(doc({ vault: { auth: { method: 'kubernetes', role: 'r', mount: 'k8s-east', token_file: '/t' } } }), {}).vault.auth, {
      method: 'kubernetes', mount: 'k8s-east', role: 'r', tokenFile: '/t',
    });
    refused(() => buildConfig(doc({ vault: { auth: { method: 'kubernetes' } } }), {}), 'vault.auth.role');
  });

  test('jwt: role and token_file required, default mount jwt', () => {
    assert.deepEqual(buildConfig(doc({ vault: { auth: { method: 'jwt', role: 'r', token_file: '/var/run/oidc' } } }), {}).vault.auth, {
      method: 'jwt', mount: 'jwt', role: 'r', tokenFile: '/var/run/oidc',
    });
    refused(() => buildConfig(doc({ vault: { auth: { method: 'jwt', role: 'r' } } }), {}), 'vault.auth.token_file');
    refused(() => buildConfig(doc({ vault: { auth: { method: 'jwt', token_file: '/t' } } }), {}), 'vault.auth.role');
  });

  test('non-token methods need no VAULT_TOKEN', () => {
    assert.doesNotThrow(() => buildConfig(doc({ vault: { auth: { method: 'kubernetes', role: 'r' } } }), {}));
  });
});

test('batching: on by default, up to 16 calls in flight of which 1 with a partial batch, a lone batch spread over 2; every field checked and named', () => {
  const base = { keys: [{ name: 'app', issuer: 'https://i' }] };
  assert.deepEqual(buildConfig(base, { VAULT_TOKEN: 't' }).batching, { enabled: true, maxInFlight: 16, minInFlight: 2, partialInFlight: 1, loneBatchCalls: 2, maxBatchSize: 256, maxQueue: 2048, maxPendingBytes: 16 * 1024 * 1024 });
  assert.deepEqual(buildConfig({ ...base, batching: { enabled: false, max_in_flight: 8 } }, { VAULT_TOKEN: 't' }).batching,
    { enabled: false, maxInFlight: 8, minInFlight: 2, partialInFlight: 1, loneBatchCalls: 2, maxBatchSize: 256, maxQueue: 2048, maxPendingBytes: 16 * 1024 * 1024 });
  assert.equal(buildConfig({ ...base, batching: { max_in_flight: 1 } }, { VAULT_TOKEN: 't' }).batching.loneBatchCalls, 1);
  assert.equal(buildConfig({ ...base, batching: { max_in_flight: 1 } }, { VAULT_TOKEN: 't' }).batching.minInFlight, 1, 'the default floor fits under a ceiling of 1');
  assert.equal(buildConfig({ ...base, batching: { min_in_flight: 16 } }, { VAULT_TOKEN: 't' }).batching.minInFlight, 16);
  assert.throws(() => buildConfig({ ...base, batching: { max_in_flight: 4, min_in_flight: 5 } }, { VAULT_TOKEN: 't' }),
    /configuration: batching\.min_in_flight: must not exceed batching\.max_in_flight \(4\)/);
  assert.throws(() => buildConfig({ ...base, batching: { min_in_flight: 0 } }, { VAULT_TOKEN: 't' }), /configuration: batching\.min_in_flight: must be a whole number from 1 to 256/);
  assert.equal(buildConfig({ ...base, batching: { lone_batch_calls: 4 } }, { VAULT_TOKEN: 't' }).batching.loneBatchCalls, 4);
  assert.throws(() => buildConfig({ ...base, batching: { max_in_flight: 2, lone_batch_calls: 3 } }, { VAULT_TOKEN: 't' }),
    /configuration: batching\.lone_batch_calls: must not exceed batching\.max_in_flight \(2\)/);
  // OpenBao refuses a transit batch_input of 500 items (its JSON limits): no Vault call may carry that many.
  assert.equal(buildConfig({ ...base, batching: { max_batch_size: 480 } }, { VAULT_TOKEN: 't' }).batching.maxBatchSize, 480);
  assert.throws(() => buildConfig({ ...base, batching: { max_batch_size: 481 } }, { VAULT_TOKEN: 't' }),
    /configuration: batching\.max_batch_size: must be a whole number from 1 to 480/);
  assert.throws(() => buildConfig({ ...base, batching: { lone_batch_calls: 0 } }, { VAULT_TOKEN: 't' }), /configuration: batching\.lone_batch_calls: must be a whole number from 1 to 256/);
  assert.throws(() => buildConfig({ ...base, batching: { max_in_flight: 0 } }, { VAULT_TOKEN: 't' }), /configuration: batching\.max_in_flight: must be a whole number from 1 to 256/);
  assert.equal(buildConfig({ ...base, batching: { max_in_flight: 4, partial_in_flight: 4 } }, { VAULT_TOKEN: 't' }).batching.partialInFlight, 4);
  assert.throws(() => buildConfig({ ...base, batching: { max_in_flight: 2, partial_in_flight: 3 } }, { VAULT_TOKEN: 't' }),
    /configuration: batching\.partial_in_flight: must not exceed batching\.max_in_flight \(2\)/);
  assert.throws(() => buildConfig({ ...base, batching: { enabled: 'yes' } }, { VAULT_TOKEN: 't' }), /configuration: batching\.enabled: must be true or false/);
  assert.throws(() => buildConfig({ ...base, batching: { size: 3 } }, { VAULT_TOKEN: 't' }), /configuration: batching\.size: unknown field/);
});

test('vault_api: on at /v1/jwt by default; mount checked and named; enabled: false turns it off', () => {
  const base = { keys: [{ name: 'app', issuer: 'https://i' }] };
  const env = { VAULT_TOKEN: 't' };
  assert.deepEqual(buildConfig(base, env).vaultApi, { mount: 'jwt' });
  assert.deepEqual(buildConfig({ ...base, vault_api: { mount: '/secret/jwt/' } }, env).vaultApi, { mount: 'secret/jwt' });
  assert.equal(buildConfig({ ...base, vault_api: { enabled: false } }, env).vaultApi, undefined);
  for (const mount of ['a b', 'jwt//x', '../x', 'x?y']) {
    assert.throws(() => buildConfig({ ...base, vault_api: { mount } }, env), /configuration: vault_api\.mount: must be a mount path such as "jwt"/, mount);
  }
  assert.throws(() => buildConfig({ ...base, vault_api: { mount: 'sign' } }, env), /configuration: vault_api\.mount: must not start with "sign\/": \/v1\/sign is Signet's own API/);
  assert.throws(() => buildConfig({ ...base, vault_api: { mount: 'sys/x' } }, env), /configuration: vault_api\.mount: must not start with "sys\/": \/v1\/sys is Vault's own/);
  assert.throws(() => buildConfig({ ...base, vault_api: { enabled: 'no' } }, env), /configuration: vault_api\.enabled: must be true or false/);
  assert.throws(() => buildConfig({ ...base, vault_api: { path: 'jwt' } }, env), /configuration: vault_api\.path: unknown field/);
});

test('sign_batch.max_items: sized to body_limit by default (64 bytes an item), at most batching.max_queue', () => {
  const base = { keys: [{ name: 'app', issuer: 'https://i' }] };
  const env = { VAULT_TOKEN: 't' };
  assert.deepEqual(buildConfig(base, env).signBatch, { maxItems: 256 });
  assert.deepEqual(buildConfig({ ...base, body_limit: 1024 * 1024 }, env).signBatch, { maxItems: 2048 }, 'capped by the default max_queue');
  assert.deepEqual(buildConfig({ ...base, body_limit: 1000 }, env).signBatch, { maxItems: 15 });
  assert.deepEqual(buildConfig({ ...base, sign_batch: { max_items: 10 } }, env).signBatch, { maxItems: 10 });
  assert.throws(() => buildConfig({ ...base, sign_batch: { max_items: 0 } }, env), /configuration: sign_batch\.max_items: must be a whole number from 1 to 100000/);
  assert.throws(() => buildConfig({ ...base, sign_batch: { max_items: 100 }, batching: { max_queue: 50 } }, env),
    /configuration: sign_batch\.max_items: must be at most batching\.max_queue \(50\)/);
});

test('subject_pattern and audience_pattern: anchored, and a bad expression names the field', () => {
  const key = (extra: Record<string, unknown>) => ({ keys: [{ name: 'app', issuer: 'https://i', ...extra }] });
  const config = buildConfig(key({ subject_pattern: 'user-[0-9]+' }), { VAULT_TOKEN: 't' });
  assert.equal(config.keys[0]!.subjectPattern!.test('user-1'), true);
  assert.equal(config.keys[0]!.subjectPattern!.test('xuser-1'), false, 'anchored at the start');
  assert.equal(config.keys[0]!.subjectPattern!.test('user-1x'), false, 'anchored at the end');
  assert.throws(() => buildConfig(key({ subject_pattern: 'user-[' }), { VAULT_TOKEN: 't' }), /configuration: keys\[0\]\.subject_pattern: is not a valid regular expression/);
  assert.throws(() => buildConfig(key({ audience_pattern: 5 }), { VAULT_TOKEN: 't' }), /configuration: keys\[0\]\.audience_pattern: must be a non-empty string/);
});
