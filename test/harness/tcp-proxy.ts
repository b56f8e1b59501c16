// Test harness: a TCP proxy in front of a real server (Vault) on a free loopback port, passing bytes through
// unchanged, that can break chosen calls the way a network does: reset the connection on which the next N HTTP
// requests whose request line matches a pattern arrive (the client sees ECONNRESET before any answer), or answer
// the next N such requests itself with a status (as a load balancer in front of Vault answers 502). It also counts
// the requests it saw per pattern, so a test knows which calls reached the server. The server behind it is real;
// only the wire between is interfered with.

import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  /** http://127.0.0.1:<port>: give this to Signet instead of the server's own address. */
  address: string;
  /** Requests seen (request lines matching `pattern`), including those that were reset. */
  seen(pattern: RegExp): number;
  /** Resets the connection carrying each of the next `count` requests matching `pattern` (no /g flag), before it reaches the server. */
  resetNext(pattern: RegExp, count: number): void;
  /**
   * Answers each of the next `count` requests matching `pattern` itself with `status` (and Connection: close), as a
   * load balancer in front of Vault does when its backend is away; the request never reaches the server.
   */
  answerNext(pattern: RegExp, count: number, status: number): void;
  /** Requests reset or answered so far by resetNext() and answerNext(). */
  resets(): number;
  /** Forgets what resetNext() and answerNext() have not used yet. */
  cancel(): void;
  close(): Promise<void>;
}

/** An HTTP/1.1 request line at the start of a chunk or after a line end ("POST /v1/transit/sign/app HTTP/1.1"). */
const REQUEST_LINE = /(?:^|\r\n)([A-Z]+ \/\S* HTTP\/1\.[01])\r\n/g;

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const { hostname, port } = new URL(target);
  const lines: string[] = [];
  let pending: Array<{ pattern: RegExp; left: number; status?: number }> = [];
  const sockets = new Set<Socket>();
  let resetCount = 0;

  const reset = (client: Socket, upstream: Socket) => {
    client.resetAndDestroy();
    upstream.destroy();
  };

  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    const upstream = connect(Number(port), hostname);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    client.on('data', (chunk: Buffer) => {
      // A request line is written whole, with its headers, in one write by Node's HTTP clients (undici, http).
      for (const match of chunk.toString('latin1').matchAll(REQUEST_LINE)) {
        const line = match[1]!;
        lines.push(line);
        const rule = pending.find((r) => r.left > 0 && r.pattern.test(line));
        if (rule) {
          rule.left--;
          resetCount++;
          if (rule.status === undefined) {
            reset(client, upstream);
          } else {
            const body = JSON.stringify({ errors: [`proxy: HTTP ${rule.status}`] });
            client.end(`HTTP/1.1 ${rule.status} Proxy\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
            upstream.destroy();
          }
          return;
        }
      }
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => { if (!client.destroyed) client.resetAndDestroy(); });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    address,
    seen: (pattern) => lines.filter((line) => pattern.test(line)).length,
    resetNext(pattern, count) {
      pending.push({ pattern, left: count });
    },
    answerNext(pattern, count, status) {
      pending.push({ pattern, left: count, status });
    },
    resets: () => resetCount,
    cancel() {
      pending = [];
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
