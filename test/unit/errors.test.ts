// Every failure has its own class, and each class keeps the HTTP status and the code (logs, audit `rule`) that
// callers and dashboards rely on: a class renamed or moved must not change them.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AuthError, AuthFileError, ClaimPolicyError, HmacFingerprintMissingError, InvalidRequestError, KeyMissingError,
  KeyTypeError, KeyUnsupportedError, KubernetesKeyError, LoginAnswerError, OperatorTokenRefusedError, SignetError,
  TokenInvalidError, UnknownKeyError, VaultItemMissingError, VaultItemRefusedError, VaultResponseError,
  VaultUnavailableError, VersionBelowMinimumError,
} from '../../src/errors.ts';
import { itemError } from '../../src/signer/batcher.ts';

test('each error class has its status and code, its own name, and is a SignetError', () => {
  const cases: Array<[SignetError, number, string]> = [
    [new InvalidRequestError('m'), 400, 'invalid_request'],
    [new ClaimPolicyError('m'), 403, 'claim_policy'],
    [new UnknownKeyError('k'), 404, 'unknown_key'],
    [new VaultUnavailableError('sign', 'm'), 503, 'vault_unavailable'],
    [new VaultResponseError('m'), 502, 'vault_response'],
    [new TokenInvalidError('m'), 401, 'token_invalid'],
    [new KubernetesKeyError('m'), 403, 'kubernetes_key'],
    [new VersionBelowMinimumError('m'), 503, 'version_below_minimum'],
    [new VaultItemRefusedError('m'), 502, 'vault_item'],
    [new VaultItemMissingError('m'), 502, 'vault_item'],
    [new KeyMissingError('m'), 503, 'key_missing'],
    [new KeyUnsupportedError('m'), 503, 'key_unsupported'],
    [new HmacFingerprintMissingError('m'), 503, 'vault_response'],
    [new AuthFileError('m'), 503, 'auth'],
    [new LoginAnswerError('m'), 503, 'auth'],
    [new KeyTypeError('m'), 400, 'usage'],
    [new OperatorTokenRefusedError('m'), 403, 'forbidden'],
  ];
  for (const [error, status, code] of cases) {
    assert.ok(error instanceof SignetError, error.name);
    assert.equal(error.status, status, error.name);
    assert.equal(error.code, code, error.name);
    assert.equal(error.name, error.constructor.name);
  }
  assert.equal(new Set(cases.map(([e]) => e.name)).size, cases.length, 'one class per failure');
  assert.ok(new AuthFileError('m') instanceof AuthError && new LoginAnswerError('m') instanceof AuthError);
});

test('a refused batch item is told apart by its class: a version below the minimum, or any other refusal', () => {
  const below = itemError('requested version for signing is less than the minimum encryption key version');
  assert.ok(below instanceof VersionBelowMinimumError);
  assert.match(below.message, /^Vault refused the key version: /);
  const other = itemError('invalid request');
  assert.ok(other instanceof VaultItemRefusedError && !(other instanceof VersionBelowMinimumError));
  assert.equal(other.message, 'Vault refused to sign: invalid request');
});
