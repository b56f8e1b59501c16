#!/usr/bin/env node
// Health probe for containers: Docker's HEALTHCHECK (and exec probes where no public_listen is set). It needs
// nothing but Node (the image has no curl or wget) and reaches Signet where Signet listens, on loopback or a
// unix socket. In Kubernetes, httpGet probes on the public listener (public_listen) are the simpler choice.
//
//   node bin/healthcheck.js [/healthz | /readyz]
//
// Address: SIGNET_LISTEN, else `listen` in the file named by SIGNET_CONFIG, else 127.0.0.1:8250 (as Signet itself
// resolves it). Exit 0 on HTTP 200; 1 otherwise, with the reason (and /readyz's body) on stderr, which Docker and
// the kubelet keep as the probe's output.

import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { parse } from 'yaml';

const PATHS = ['/healthz', '/readyz'];
const path = process.argv[2] ?? '/healthz';
if (!PATHS.includes(path)) {
  process.stderr.write(`healthcheck: path must be one of ${PATHS.join(', ')}\n`);
  process.exit(2);
}

function listenAddress() {
  if (process.env.SIGNET_LISTEN) return process.env.SIGNET_LISTEN;
  const file = process.env.SIGNET_CONFIG;
  if (file) {
    try {
      const doc = parse(readFileSync(file, 'utf8'));
      if (doc && typeof doc.listen === 'string' && doc.listen) return doc.listen;
    } catch {
      // Signet itself reports a bad configuration; the probe then fails on the connection.
    }
  }
  return '127.0.0.1:8250';
}

const listen = listenAddress();
let target;
if (listen.startsWith('unix:')) {
  target = { socketPath: listen.slice('unix:'.length) };
} else {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  if (!match) {
    process.stderr.write(`healthcheck: cannot use listen address "${listen}"\n`);
    process.exit(1);
  }
  target = { host: match[1] ?? match[2], port: Number(match[3]) };
}

// Host: localhost, since Signet answers only loopback Host names (or allowed_hosts), even when bound to 0.0.0.0.
const req = request({ ...target, path, method: 'GET', timeout: 3000, headers: { 'user-agent': 'signet-healthcheck', host: 'localhost' } }, (res) => {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (chunk) => { body += chunk; });
  res.on('end', () => {
    if (res.statusCode === 200) process.exit(0);
    process.stderr.write(`healthcheck: ${path} answered HTTP ${res.statusCode}: ${body.slice(0, 500)}\n`);
    process.exit(1);
  });
});
req.on('timeout', () => req.destroy(new Error(`no answer from ${listen} within 3 s`)));
req.on('error', (error) => {
  process.stderr.write(`healthcheck: ${path} on ${listen}: ${error.message}\n`);
  process.exit(1);
});
req.end();
