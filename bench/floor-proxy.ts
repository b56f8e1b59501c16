// The latency floor of any Node sidecar, for reference: a bare node:http server that forwards each request body
// to Vault through an undici Pool (keep-alive, as Signet's hot path does) and returns Vault's answer. No
// validation, no claims, no JWS: what is left is the extra loopback hop and Node's own HTTP work.
//
// Environment: BENCH_VAULT_ADDR, BENCH_VAULT_TOKEN. The request path is /v1/<Vault path>; the body is sent as is.
// Prints {"bench":true,"port":N} and stops when its stdin closes or on SIGTERM.

import { createServer } from 'node:http';
import { Pool } from 'undici';
import { announce } from './lib.ts';

const token = process.env.BENCH_VAULT_TOKEN ?? '';
const pool = new Pool(process.env.BENCH_VAULT_ADDR!, { connections: 64, pipelining: 1, keepAliveTimeout: 30_000 });

const server = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    pool.request({
      method: 'POST',
      path: request.url ?? '/',
      headers: { 'content-type': 'application/json', 'x-vault-token': token },
      body: Buffer.concat(chunks),
    }).then(async (answer) => {
      const text = await answer.body.text();
      response.writeHead(answer.statusCode, { 'content-type': 'application/json' });
      response.end(text);
    }, (error: Error) => {
      response.writeHead(502, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ errors: [error.message] }));
    });
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
