// `node bench/sign-micro.ts`: the CPU Signet's sign path spends per token of a caller's batch, in one process,
// without HTTP or Vault: a Signer and a real SignBatcher whose Vault call answers at once (on the next turn) with a
// signature per input. What it measures is the work that is Signet's own (claims policy, payload, header, transit
// input, batching, tokens), so it is steady on a busy machine, where the end-to-end (f) rows of bench.ts are not.

import { buildConfig } from '../src/config.ts';
import { algSpec, type JwsAlg } from '../src/jwt/algorithms.ts';
import type { Keyring, KeyView } from '../src/keys/keyring.ts';
import { DEFAULT_BATCHER, SignBatcher, type LaneKey } from '../src/signer/batcher.ts';
import { Signer } from '../src/signer/signer.ts';
import type { ItemResult } from '../src/vault/transit.ts';

const ITEMS = 64;
const CALLERS = 16;
const signature = 'vault:v1:' + 's'.repeat(86);

async function run(alg: JwsAlg, type: string, seconds: number): Promise<number> {
  const config = buildConfig({ keys: [{ name: 'app', issuer: 'https://bench' }] }, { VAULT_TOKEN: 't' });
  const view = { name: 'app', alg, type, spec: algSpec(alg), signing: { kid: 'k'.repeat(43), version: 1 } } as unknown as KeyView;
  const keyring = { view: () => view } as unknown as Keyring;
  const send = (_lane: LaneKey, inputs: string[]): Promise<ItemResult[]> =>
    new Promise((resolve) => setImmediate(() => resolve(JSON.parse(JSON.stringify({ batch_results: inputs.map(() => ({ signature, key_version: 1 })) })).batch_results)));
  const batcher = new SignBatcher(DEFAULT_BATCHER, send);
  const signer = new Signer(config.keys, keyring, batcher, async () => {});
  const bodies = Array.from({ length: CALLERS }, () => JSON.stringify({ batch_input: Array.from({ length: ITEMS }, (_, i) => ({ claims: { sub: `bench-user-${i}`, scope: 'read' } })) }));
  let tokens = 0;
  let running = true;
  const caller = async (body: string) => {
    while (running) {
      const requests = (JSON.parse(body) as { batch_input: Array<{ claims: Record<string, unknown> }> }).batch_input;
      const results = await signer.signBatch('app', requests);
      tokens += results.length;
    }
  };
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  setTimeout(() => { running = false; }, seconds * 1000);
  await Promise.all(bodies.map(caller));
  const cpu = process.cpuUsage(cpu0);
  const us = (cpu.user + cpu.system) / tokens;
  if (process.env.MICRO_VERBOSE) process.stdout.write(`${alg}: ${tokens} tokens in ${((performance.now() - started) / 1000).toFixed(1)} s, ${us.toFixed(2)} us CPU per token\n`);
  return us;
}

const seconds = Number(process.env.MICRO_SECONDS ?? 1);
const rounds = Number(process.env.MICRO_ROUNDS ?? 9);
const figures: Record<string, number[]> = { EdDSA: [], ES256: [] };
for (let round = 0; round < rounds; round++) {
  figures.EdDSA!.push(await run('EdDSA', 'ed25519', seconds));
  figures.ES256!.push(await run('ES256', 'ecdsa-p256', seconds));
}
for (const [alg, us] of Object.entries(figures)) {
  us.sort((a, b) => a - b);
  process.stdout.write(`${alg}: median ${us[us.length >> 1]!.toFixed(2)} us, least ${us[0]!.toFixed(2)} us CPU per token over ${rounds} rounds\n`);
}
