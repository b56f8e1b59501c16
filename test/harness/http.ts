// Raw HTTP requests for tests that need what fetch cannot do: a chosen Host header, a unix socket.

import { request } from 'node:http';
import { connect } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  body: any;
}

export interface RawRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | object;
  /** host:port target (default 127.0.0.1) … */
  host?: string;
  port?: number;
  /** … or a unix socket. */
  socketPath?: string;
}

export function rawRequest(options: RawRequest): Promise<RawResponse> {
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = request({
      ...(options.socketPath ? { socketPath: options.socketPath } : { host: options.host ?? '127.0.0.1', port: options.port }),
      method: options.method ?? (body === undefined ? 'GET' : 'POST'),
      path: options.path,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }),
        ...options.headers,
      },
      timeout: 15_000,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { text += chunk; });
      res.on('end', () => {
        let parsed: unknown;
        try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/** The port a TestSignet listens on. */
export function portOf(url: string): number {
  return Number(new URL(url).port);
}

/**
 * Sends a request's head only (method, path, headers with the content-length of a body it never sends) on a raw
 * socket and resolves with the response that arrives meanwhile: status, headers, body. It shows a server answered
 * without reading the body. Rejects if the connection ends or `timeoutMs` passes before a complete response.
 */
export function headOnlyRequest(options: { port: number; method?: string; path: string; headers: Record<string, string>; timeoutMs?: number }): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: options.port });
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error(`no complete response within ${options.timeoutMs ?? 10_000} ms (the server waits for the body?)`)), options.timeoutMs ?? 10_000);
    const fail = (error: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    socket.on('error', fail);
    socket.on('end', () => fail(new Error(`connection ended before a complete response: ${JSON.stringify(received.toString('latin1').slice(0, 200))}`)));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...lines] = received.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = Number(headers['content-length'] ?? 0);
      if (received.length < end + 4 + length) return;
      clearTimeout(timer);
      socket.destroy();
      const text = received.subarray(end + 4, end + 4 + length).toString('utf8');
      let parsed: unknown;
      try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine!)?.[1] ?? 0), headers, text, body: parsed });
    });
    const head = [`${options.method ?? 'POST'} ${options.path} HTTP/1.1`, `host: 127.0.0.1:${options.port}`, ...Object.entries(options.headers).map(([k, v]) => `${k}: ${v}`)];
    socket.write(`${head.join('\r\n')}\r\n\r\n`);
  });
}
