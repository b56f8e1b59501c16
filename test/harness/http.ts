// Raw HTTP requests for tests that need what fetch cannot do: a chosen Host header, a unix socket.

import { request } from 'node:http';

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
