// Local verification throughput in one process (the benchmark pins it to one core with taskset): Signet's
// in-process verifier.verify (the function behind POST /v1/verify, no HTTP) against raw node:crypto.verify on the
// same tokens with a pre-imported KeyObject, plus the layers in between (WebCrypto, jose) to show where time goes.
//
// Environment as bench/signet-server.ts. Protocol: prints {"bench":true,"ready":true} once the keys are loaded,
// reads one JSON line {"seconds": n, "tokens": {"ES256": [...], ...}}, prints the results, and waits to be stopped.

import { createPublicKey, verify as cryptoVerify, webcrypto, type KeyObject } from 'node:crypto';
import { createInterface } from 'node:readline';
import { compactVerify, importJWK } from 'jose';
import { buildApp } from '../src/app.ts';
import { announce, benchConfig } from './lib.ts';

const config = benchConfig();
const app = await buildApp(config, { batcher: { enabled: true } });
await app.ready();
const { verifier, keyring } = app.services;

process.once('SIGTERM', () => void app.close().finally(() => process.exit(0)));
process.stdin.on('end', () => void app.close().finally(() => process.exit(0)));

/** Calls fn (synchronous) in a loop for `seconds`; returns calls per second. */
function timedSync(seconds: number, fn: (i: number) => void): number {
  const started = performance.now();
  const end = started + seconds * 1000;
  let count = 0;
  while (true) {
    for (let j = 0; j < 64; j++) fn(count++);
    if (performance.now() >= end) break;
  }
  return count / ((performance.now() - started) / 1000);
}

/** Keeps `concurrency` calls of fn in flight for `seconds`; returns completions per second. */
async function timedAsync(seconds: number, concurrency: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  const end = started + seconds * 1000;
  let count = 0;
  let next = 0;
  const worker = async () => {
    while (performance.now() < end) {
      await fn(next++);
      count++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return count / ((performance.now() - started) / 1000);
}

interface Prepared {
  token: string;
  data: Buffer;
  signature: Buffer;
}

const WEBCRYPTO: Record<string, webcrypto.AlgorithmIdentifier | webcrypto.EcdsaParams> = {
  ES256: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams,
  RS256: { name: 'RSASSA-PKCS1-v1_5' },
  EdDSA: { name: 'Ed25519' },
};

async function measure(alg: string, tokens: string[], seconds: number): Promise<Record<string, number>> {
  const header = JSON.parse(Buffer.from(tokens[0]!.split('.')[0]!, 'base64url').toString('utf8')) as { kid: string };
  const found = keyring.findKid(header.kid);
  if (!found) throw new Error(`kid ${header.kid} of the ${alg} tokens is not in the keyring`);
  const { kty, crv, x, y, n, e } = found.version.jwk as Record<string, string>;
  const keyObject: KeyObject = createPublicKey({ key: { kty, crv, x, y, n, e } as import('node:crypto').JsonWebKey, format: 'jwk' });
  const cryptoKey = await importJWK({ kty, crv, x, y, n, e }, alg) as webcrypto.CryptoKey;
  const [digest, keyInput] = alg === 'ES256' ? ['sha256', { key: keyObject, dsaEncoding: 'ieee-p1363' as const }]
    : alg === 'RS256' ? ['sha256', keyObject]
      : [null, keyObject];
  const prepared: Prepared[] = tokens.map((token) => {
    const dot = token.lastIndexOf('.');
    return { token, data: Buffer.from(token.slice(0, dot)), signature: Buffer.from(token.slice(dot + 1), 'base64url') };
  });
  const n0 = tokens.length;

  // Raw: split the compact token, decode the signature, crypto.verify with the pre-imported KeyObject.
  const raw = (i: number) => {
    const token = tokens[i % n0]!;
    const dot = token.lastIndexOf('.');
    if (!cryptoVerify(digest, Buffer.from(token.slice(0, dot)), keyInput, Buffer.from(token.slice(dot + 1), 'base64url'))) {
      throw new Error(`raw crypto.verify refused a ${alg} token`);
    }
  };
  const subtle = async (i: number) => {
    const p = prepared[i % n0]!;
    if (!(await webcrypto.subtle.verify(WEBCRYPTO[alg]!, cryptoKey, p.signature, p.data))) throw new Error(`WebCrypto refused a ${alg} token`);
  };
  const jose = (i: number) => compactVerify(tokens[i % n0]!, cryptoKey, { algorithms: [alg] });
  const signet = (i: number) => verifier.verify({ token: tokens[i % n0]! });

  const warm = Math.min(0.5, seconds / 3);
  const result: Record<string, number> = {};
  timedSync(warm, raw);
  result.raw = timedSync(seconds, raw);
  await timedAsync(warm, 16, subtle);
  result.subtle16 = await timedAsync(seconds, 16, subtle);
  await timedAsync(warm, 16, jose);
  result.jose16 = await timedAsync(seconds, 16, jose);
  await timedAsync(warm, 1, signet);
  result.verify1 = await timedAsync(seconds, 1, signet);
  await timedAsync(warm, 16, signet);
  result.verify16 = await timedAsync(seconds, 16, signet);
  return result;
}

announce({ ready: true, pid: process.pid });
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const request = JSON.parse(line) as { seconds: number; tokens: Record<string, string[]> };
  const results: Record<string, Record<string, number>> = {};
  for (const [alg, tokens] of Object.entries(request.tokens)) results[alg] = await measure(alg, tokens, request.seconds);
  announce({ results });
}
