// Test harness: a real etcd and a real kube-apiserver (built once from the Go module proxy by
// scripts/etcd-bin.sh and scripts/kube-apiserver-bin.sh, cached like Vault) on free loopback ports in a temp
// directory, with an admin token, signing service-account tokens through an ExternalJWTSigner socket (Signet's)
// or, for comparison, through its own key file. Nothing here is a fake.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { freePort, stopChild } from '../../src/vault/dev-server.ts';
import { ROOT } from './ops.ts';

const binaries = new Map<string, Promise<string>>();

/** Runs scripts/<name>-bin.sh (override variable, the cache, else a build), passing its progress through. */
function binary(name: 'etcd' | 'kube-apiserver'): Promise<string> {
  let found = binaries.get(name);
  if (!found) {
    found = new Promise((resolve, reject) => {
      const child = execFile('bash', [join(ROOT, 'scripts', `${name}-bin.sh`)], { maxBuffer: 64 * 1024 * 1024, timeout: 60 * 60_000 }, (error, stdout) => {
        if (error) reject(new Error(`could not find or build ${name} (scripts/${name}-bin.sh exited ${error.code ?? error.message})`));
        else resolve(stdout.trim().split('\n').at(-1)!);
      });
      child.stderr?.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString().split('\n')) if (line.startsWith(`[${name}-bin]`)) process.stderr.write(`${line}\n`);
      });
    });
    binaries.set(name, found);
  }
  return found;
}

export const etcdBinary = () => binary('etcd');
export const kubeApiserverBinary = () => binary('kube-apiserver');

interface Proc {
  child: ChildProcess;
  output: () => string;
}

function startProcess(bin: string, args: string[], cwd: string): Proc {
  const child = spawn(bin, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cwd } });
  let out = '';
  const keep = (chunk: Buffer) => { out = (out + chunk.toString()).slice(-40_000); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, output: () => out };
}

/** etcd and kube-apiserver may take a while to flush on SIGTERM. */
const stopProcess = (child: ChildProcess) => stopChild(child, 10_000);

async function waitUntil(what: string, proc: Proc, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) throw new Error(`${what} exited with code ${proc.child.exitCode}:\n${proc.output().slice(-4000)}`);
    try {
      if (await check()) return;
    } catch { /* not answering yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms:\n${proc.output().slice(-4000)}`);
}

export interface Etcd {
  url: string;
  stop(): Promise<void>;
}

export async function startEtcd(dir: string): Promise<Etcd> {
  const bin = await etcdBinary();
  const client = await freePort();
  const peer = await freePort();
  const url = `http://127.0.0.1:${client}`;
  const proc = startProcess(bin, [
    '--name=signet-test', `--data-dir=${join(dir, 'etcd')}`,
    `--listen-client-urls=${url}`, `--advertise-client-urls=${url}`,
    `--listen-peer-urls=http://127.0.0.1:${peer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
    `--initial-cluster=signet-test=http://127.0.0.1:${peer}`, '--log-level=warn',
    // A test cluster: no fsync per write (the tests measure the API server and Signet, not the disk).
    '--unsafe-no-fsync',
  ], dir);
  try {
    await waitUntil('etcd', proc, async () => (await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) })).ok, 60_000);
  } catch (error) {
    await stopProcess(proc.child);
    throw error;
  }
  return { url, stop: () => stopProcess(proc.child) };
}

export interface KubeResponse {
  status: number;
  body: any;
  ms: number;
}

export interface KubeApiserver {
  url: string;
  /** The CA (PEM) of the API server's self-signed serving certificate: what a client such as Vault must trust. */
  caCert: string;
  process: ChildProcess;
  output(): string;
  /** One API call as the admin (system:masters). */
  request(method: string, path: string, body?: unknown): Promise<KubeResponse>;
  /** TokenRequest for a ServiceAccount (audiences: the API server's own when not given); answers the status and, on success, the token. */
  tokenRequest(namespace: string, name: string, expirationSeconds?: number, audiences?: string[]): Promise<KubeResponse & { token?: string }>;
  /** TokenReview of a token: whether the API server authenticates it, and as whom. */
  tokenReview(token: string): Promise<{ status: number; authenticated: boolean; username?: string; error?: string }>;
  stop(): Promise<void>;
}

export interface KubeApiserverOptions {
  etcd: Etcd;
  /** The ExternalJWTSigner socket (--service-account-signing-endpoint) … */
  signingEndpoint?: string;
  /** … or kube-apiserver's own key file (--service-account-signing-key-file), for comparison. */
  ownKeyFile?: boolean;
  issuer?: string;
  /** etcd key prefix, so two API servers can share one etcd. */
  etcdPrefix?: string;
}

export const ISSUER = 'https://kubernetes.default.svc.cluster.local';

export async function startKubeApiserver(dir: string, options: KubeApiserverOptions): Promise<KubeApiserver> {
  const bin = await kubeApiserverBinary();
  const port = await freePort();
  const home = mkdtempSync(join(dir, 'apiserver-'));
  const certDir = join(home, 'certs');
  mkdirSync(certDir);
  const adminToken = `admin-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
  const tokenFile = join(home, 'tokens.csv');
  writeFileSync(tokenFile, `${adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
  const signing: string[] = [];
  if (options.signingEndpoint) signing.push(`--service-account-signing-endpoint=${options.signingEndpoint}`);
  if (options.ownKeyFile) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(join(home, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(join(home, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    signing.push(`--service-account-signing-key-file=${join(home, 'sa.key')}`, `--service-account-key-file=${join(home, 'sa.pub')}`);
  }
  const url = `https://127.0.0.1:${port}`;
  const proc = startProcess(bin, [
    `--etcd-servers=${options.etcd.url}`, `--etcd-prefix=${options.etcdPrefix ?? '/registry'}`,
    '--bind-address=127.0.0.1', `--secure-port=${port}`, '--advertise-address=127.0.0.1',
    '--endpoint-reconciler-type=none', `--cert-dir=${certDir}`, `--token-auth-file=${tokenFile}`,
    '--authorization-mode=RBAC', '--service-cluster-ip-range=10.0.0.0/24',
    `--service-account-issuer=${options.issuer ?? ISSUER}`, ...signing,
  ], home);
  // The API server's certificate is self-signed into --cert-dir; the test trusts it for this connection only.
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false }, keepAliveTimeout: 30_000 });
  const request: KubeApiserver['request'] = async (method, path, body) => {
    const started = performance.now();
    const response = await undiciFetch(`${url}${path}`, {
      method, dispatcher,
      headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await response.text();
    const ms = performance.now() - started;
    let parsed: unknown;
    try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = text; }
    return { status: response.status, body: parsed, ms };
  };
  const stop = async () => {
    await stopProcess(proc.child);
    await dispatcher.close();
    rmSync(home, { recursive: true, force: true });
  };
  try {
    await waitUntil('kube-apiserver', proc, async () => (await request('GET', '/readyz')).status === 200, 120_000);
  } catch (error) {
    await stop();
    throw error;
  }
  // apiserver.crt holds the serving certificate, then the CA that signed it (generated at start-up).
  const caCert = readFileSync(join(certDir, 'apiserver.crt'), 'utf8').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n?/g)!.at(-1)!;
  return {
    url, caCert, process: proc.child, output: proc.output, request, stop,
    async tokenRequest(namespace, name, expirationSeconds = 600, audiences) {
      const answer = await request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
        apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds, ...(audiences ? { audiences } : {}) },
      });
      return { ...answer, token: answer.status === 201 ? answer.body.status.token as string : undefined };
    },
    async tokenReview(token) {
      const answer = await request('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token },
      });
      const status = answer.body?.status ?? {};
      return { status: answer.status, authenticated: status.authenticated === true, username: status.user?.username, error: status.error };
    },
  };
}

/** A temp directory for one cluster (etcd data, certificates, sockets); short, as a unix socket path must be. */
export function clusterDir(): string {
  return mkdtempSync(join(tmpdir(), 'sk8s-'));
}

/** Creates a ServiceAccount (no controller manager runs, so nothing else does). */
export async function createServiceAccount(api: KubeApiserver, namespace: string, name: string): Promise<void> {
  const answer = await api.request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, {
    apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name },
  });
  if (answer.status !== 201) throw new Error(`creating ServiceAccount ${namespace}/${name}: HTTP ${answer.status} ${JSON.stringify(answer.body).slice(0, 500)}`);
}
