// `node bench/vault-shapes.ts`: what Vault's Transit costs per token by the shape of the calls that carry the tokens,
// the trade-off behind the batcher's choices (larger calls, calls side by side, a lone batch spread in pieces). One
// client against a Vault dev server on this machine: for each shape (calls × items per call, sent at once), the
// client repeats it for BENCH_DURATION seconds and reads Vault's CPU from /proc. Prints, per shape, Vault's CPU per
// token and the median time until every call of the shape has answered, each the median of BENCH_REPEAT rounds.
// BENCH_SHAPES=1x64,2x240 measures those shapes (calls x items) instead of the default ones; BENCH_ALGS=EdDSA narrows.

import { Pool } from 'undici';
import { algSpec, type JwsAlg } from '../src/jwt/algorithms.ts';
import { findVaultBinary, startDevVault, vaultApi } from '../src/vault/dev-server.ts';
import { cpuSeconds, percentile, table } from './lib.ts';

const SHAPES: Array<[calls: number, items: number]> = process.env.BENCH_SHAPES
  ? process.env.BENCH_SHAPES.split(',').map((shape) => {
    const match = /^\s*(\d+)x(\d+)\s*$/.exec(shape);
    if (!match || Number(match[1]) < 1 || Number(match[2]) < 1) throw new Error(`BENCH_SHAPES: "${shape}" is not calls x items, e.g. 2x240`);
    return [Number(match[1]), Number(match[2])] as [number, number];
  })
  : [[1, 64], [1, 256], [2, 32], [2, 64], [2, 256]];
const seconds = Number(process.env.BENCH_DURATION ?? 3);
const rounds = Number(process.env.BENCH_REPEAT ?? 3);
const cases: Array<{ alg: JwsAlg; type: string }> = [{ alg: 'EdDSA', type: 'ed25519' }, { alg: 'ES256', type: 'ecdsa-p256' }]
  .filter((c) => !process.env.BENCH_ALGS || process.env.BENCH_ALGS.split(',').includes(c.alg)) as Array<{ alg: JwsAlg; type: string }>;

const vault = await startDevVault(await findVaultBinary());
const pool = new Pool(vault.address, { connections: 8 });
try {
  await vaultApi(vault.address, vault.rootToken, 'POST', 'sys/mounts/transit', { type: 'transit' });
  const rows: Array<Array<string | number>> = [];
  for (const c of cases) {
    await vaultApi(vault.address, vault.rootToken, 'POST', `transit/keys/${c.type}`, { type: c.type });
    const spec = algSpec(c.alg);
    const path = `/v1/transit/sign/${c.type}${spec.hash ? `/${spec.hash}` : ''}`;
    // A JWS signing input of a typical size (about 270 characters of base64), the digest where the alg hashes first.
    const input = Buffer.from(`eyJhbGciOiJ${'x'.repeat(60)}.eyJzdWIiOiJ${'y'.repeat(130)}`).toString('base64');
    const bodyOf = (items: number) => JSON.stringify({ ...spec.signParams, key_version: 1, batch_input: Array.from({ length: items }, () => ({ input })) });
    const call = async (body: string) => {
      const answer = await pool.request({ method: 'POST', path, headers: { 'x-vault-token': vault.rootToken }, body });
      if (answer.statusCode !== 200) throw new Error(`Vault answered ${answer.statusCode}: ${await answer.body.text()}`);
      await answer.body.json();
    };
    const figures = new Map<string, { us: number[]; p50: number[] }>();
    for (let round = 0; round < rounds; round++) {
      for (const [calls, items] of SHAPES) {
        const body = bodyOf(items);
        const times: number[] = [];
        const cpu0 = cpuSeconds(vault.process.pid!);
        const end = performance.now() + seconds * 1000;
        while (performance.now() < end) {
          const started = performance.now();
          await Promise.all(Array.from({ length: calls }, () => call(body)));
          times.push(performance.now() - started);
        }
        const us = ((cpuSeconds(vault.process.pid!) - cpu0) * 1e6) / (times.length * calls * items);
        const shape = `${calls} × ${items}`;
        const entry = figures.get(shape) ?? { us: [], p50: [] };
        entry.us.push(us);
        entry.p50.push(percentile(times.sort((a, b) => a - b), 50));
        figures.set(shape, entry);
      }
    }
    const median = (values: number[]) => values.sort((a, b) => a - b)[values.length >> 1]!;
    for (const [shape, { us, p50 }] of figures) {
      rows.push([c.alg, shape, median(us).toFixed(0), `${Math.min(...us).toFixed(0)}-${Math.max(...us).toFixed(0)}`, median(p50).toFixed(2)]);
    }
  }
  process.stdout.write(`Vault transit/sign by call shape: ${rounds} rounds of ${seconds} s, one client, calls of a shape sent at once\n\n`);
  process.stdout.write(`${table(['alg', 'calls × items', 'Vault CPU us/token', 'range', 'p50 ms (all calls answered)'], rows, [false, false, true, true, true])}\n`);
} finally {
  await pool.close();
  await vault.stop();
}
