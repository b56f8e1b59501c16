// `npx node bench/kubernetes.ts`: the TokenRequest latency Signet adds as kube-apiserver's external signer
// (issue 12). One run, one etcd, two real kube-apiservers side by side: one signing through Signet's
// ExternalJWTSigner socket (Vault Transit, ES256), one with its own key file (ES256). Sequential TokenRequests,
// interleaved between the two so both see the same machine load; prints p50/p90/p99 of each and the difference.
//
// KUBE_BENCH_REQUESTS=n (default 300) per API server, after 30 of warm-up each. It is a benchmark, not a test.

import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { startKubernetesSigners } from '../src/kubernetes/server.ts';
import { clusterDir, createServiceAccount, ISSUER, startEtcd, startKubeApiserver, type KubeApiserver } from '../test/harness/kubernetes.ts';
import { startSignet } from '../test/harness/signet.ts';
import { startVault } from '../test/harness/vault.ts';
import { fixed, percentile, table } from './lib.ts';

const out = (text = '') => process.stdout.write(`${text}\n`);
const REQUESTS = Number(process.env.KUBE_BENCH_REQUESTS ?? 300);
if (!Number.isSafeInteger(REQUESTS) || REQUESTS < 10) throw new Error('KUBE_BENCH_REQUESTS must be a whole number of at least 10');

const dir = clusterDir();
const vault = await startVault('dev');
await vault.createKey('k8s', 'ecdsa-p256');
const signet = await startSignet(vault, [{ name: 'k8s', issuer: ISSUER, max_ttl: '1h' }], {
  config: { log_level: 'warn', kubernetes: [{ name: 'bench', socket: join(dir, 'signer.sock'), key: 'k8s' }] },
});
await signet.ready(15_000);
const signers = await startKubernetesSigners(signet.app.services);
const etcd = await startEtcd(dir);
const viaSignet = await startKubeApiserver(dir, { etcd, signingEndpoint: join(dir, 'signer.sock'), etcdPrefix: '/signet' });
const viaKeyFile = await startKubeApiserver(dir, { etcd, ownKeyFile: true, etcdPrefix: '/keyfile' });

try {
  const servers: Array<[string, KubeApiserver]> = [['Signet (Vault Transit)', viaSignet], ['own key file', viaKeyFile]];
  for (const [, api] of servers) await createServiceAccount(api, 'default', 'bench');
  const samples = new Map<string, number[]>(servers.map(([name]) => [name, []]));
  for (let i = 0; i < 30 + REQUESTS; i++) {
    for (const [name, api] of servers) {
      const answer = await api.tokenRequest('default', 'bench');
      if (answer.status !== 201) throw new Error(`${name}: TokenRequest HTTP ${answer.status}`);
      if (i >= 30) samples.get(name)!.push(answer.ms);
    }
  }
  const rows = [...samples].map(([name, values]) => {
    const sorted = Float64Array.from(values).sort();
    return [name, String(values.length), fixed(percentile(sorted, 50), 2), fixed(percentile(sorted, 90), 2), fixed(percentile(sorted, 99), 2)];
  });
  out(`TokenRequest latency, ms (sequential, interleaved, ${REQUESTS} each, ES256 both)`);
  out(table(['kube-apiserver signing with', 'n', 'p50', 'p90', 'p99'], rows, [false, true, true, true, true]));
  const p50 = (name: string) => percentile(Float64Array.from(samples.get(name)!).sort(), 50);
  out(`p50 added by Signet: ${fixed(p50(servers[0]![0]) - p50(servers[1]![0]), 2)} ms`);
} finally {
  await viaSignet.stop();
  await viaKeyFile.stop();
  await etcd.stop();
  await Promise.all(signers.map((s) => s.close()));
  await signet.close();
  await vault.stop();
  rmSync(dir, { recursive: true, force: true });
}
