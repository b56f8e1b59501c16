// The floors of any Node sidecar, for reference (bench modes (p) and (g)), against the same Vault:
// - any other path: a bare node:http server that forwards each request body to Vault through an undici Pool
//   (keep-alive, as Signet's hot path does) and returns Vault's answer. No validation, no claims, no JWS: what is
//   left is the extra loopback hop and Node's own HTTP work.
// - POST /jwt/<alg>/<Vault sign path>: the least a JWT batch signer does with a caller's batch_input of claim sets:
//   parse it, build each token's header.payload (iss, iat, nbf, exp and a random jti added, nothing checked), one
//   transit call for all of them (a digest where Signet sends one), and answer the tokens as JSON. No claims
//   policy, no schema, no metrics, no logs, no low-S, no batcher. Signet's CPU per token in (f) against this one's
//   in (g) is what Signet's own features cost above the work no Node sidecar avoids.
//
// Environment: BENCH_VAULT_ADDR, BENCH_VAULT_TOKEN. Prints {"bench":true,"port":N} and stops when its stdin closes
// or on SIGTERM.

import { hash, randomUUID } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import { Pool } from 'undici';
import { algSpec, type JwsAlg } from '../src/jwt/algorithms.ts';
import { announce } from './lib.ts';

const token = process.env.BENCH_VAULT_TOKEN ?? '';
const pool = new Pool(process.env.BENCH_VAULT_ADDR!, { connections: 64, pipelining: 1, keepAliveTimeout: 30_000 });
const vaultHeaders = { 'content-type': 'application/json', 'x-vault-token': token };
const JWT_PATH = /^\/jwt\/([A-Za-z0-9]+)(\/v1\/.+)$/;

function fail(response: ServerResponse, status: number, message: string): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ errors: [message] }));
}

async function forward(path: string, body: Buffer, response: ServerResponse): Promise<void> {
  const answer = await pool.request({ method: 'POST', path, headers: vaultHeaders, body });
  const text = await answer.body.text();
  response.writeHead(answer.statusCode, { 'content-type': 'application/json' });
  response.end(text);
}

async function signJwts(alg: JwsAlg, path: string, body: Buffer, response: ServerResponse): Promise<void> {
  const spec = algSpec(alg);
  const { batch_input: items } = JSON.parse(body.toString()) as { batch_input: Array<{ claims: Record<string, unknown> }> };
  const header = Buffer.from(JSON.stringify({ alg, kid: 'floor-1', typ: 'JWT' })).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const signingInputs = items.map(({ claims }) =>
    `${header}.${Buffer.from(JSON.stringify({ iss: 'floor', ...claims, iat: now, nbf: now, exp: now + 900, jti: randomUUID() })).toString('base64url')}`);
  const batchInput = signingInputs.map((input) => ({ input: spec.prehash ? hash(spec.prehash, input, 'base64') : Buffer.from(input).toString('base64') }));
  const vaultBody = JSON.stringify({ ...spec.signParams, ...(spec.prehash && { prehashed: true }), key_version: 1, batch_input: batchInput });
  const answer = await pool.request({ method: 'POST', path, headers: vaultHeaders, body: vaultBody });
  const { data } = await answer.body.json() as { data: { batch_results: Array<{ signature: string }> } };
  const results = data.batch_results.map((r, i) => ({ token: `${signingInputs[i]}.${r.signature.slice(r.signature.indexOf(':', 6) + 1)}` }));
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ batch_results: results }));
}

const server = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const url = request.url ?? '/';
    const jwt = JWT_PATH.exec(url);
    const done = jwt ? signJwts(jwt[1] as JwsAlg, jwt[2]!, Buffer.concat(chunks), response) : forward(url, Buffer.concat(chunks), response);
    done.catch((error: Error) => fail(response, 502, error.message));
  });
});

const stop = () => {
  server.close();
  void pool.close().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();

server.listen(0, '127.0.0.1', () => announce({ port: (server.address() as { port: number }).port, pid: process.pid }));
