// One Signet for the benchmark, in its own process (so its RSS and CPU are measured apart from the load
// generator): buildApp on a free loopback port, batching on or off, then one JSON line with its port and pid.
// It stops when its stdin closes (the benchmark went away) or on SIGTERM / SIGINT.
//
// Environment: BENCH_VAULT_ADDR, BENCH_VAULT_TOKEN, BENCH_KEYS (JSON list of key configurations),
// BENCH_BATCHING (on | off), BENCH_BATCHER (optional JSON of batcher options, e.g. {"maxInFlight": 2}),
// BENCH_SOCKET (optional: a unix socket path to listen on instead of a loopback port).
// A line "mem" on stdin answers with process.memoryUsage().

import { createInterface } from 'node:readline';
import { buildApp } from '../src/app.ts';
import { announce, benchConfig } from './lib.ts';

const batching = process.env.BENCH_BATCHING !== 'off';

const config = benchConfig();

const tuning = JSON.parse(process.env.BENCH_BATCHER || '{}') as Record<string, number>;
const app = await buildApp(config, { batcher: { ...tuning, enabled: batching } });

let closing = false;
async function shutdown(): Promise<void> {
  if (closing) return;
  closing = true;
  const timer = setTimeout(() => process.exit(1), 5000);
  try {
    await app.close();
  } finally {
    clearTimeout(timer);
    process.exit(0);
  }
}
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());
process.stdin.on('end', () => void shutdown());
process.stdin.on('error', () => void shutdown());
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'mem') announce({ memory: process.memoryUsage() });
});

// BENCH_SOCKET: listen on that unix socket instead of a loopback port (the bench's row (u)).
const socket = process.env.BENCH_SOCKET;
if (socket) {
  await app.listen({ path: socket });
  announce({ port: 0, socket, pid: process.pid, batching });
} else {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  announce({ port, pid: process.pid, batching });
}
