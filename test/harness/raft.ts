// A 3-node Vault HA cluster on integrated storage (Raft), all on loopback ports, initialised and unsealed.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, vaultApi } from '../../src/vault/dev-server.ts';
import { vaultBinary } from './vault.ts';

export interface RaftNode {
  id: string;
  address: string;
  process: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface RaftCluster {
  nodes: RaftNode[];
  rootToken: string;
  api(address: string, method: string, path: string, body?: unknown): Promise<Record<string, unknown>>;
  /** The node that is active now (asks each node's sys/leader). */
  leader(): Promise<RaftNode | undefined>;
  stop(): Promise<void>;
}

async function health(address: string): Promise<number> {
  try {
    return (await fetch(`${address}/v1/sys/health`, { signal: AbortSignal.timeout(1000) })).status;
  } catch {
    return 0;
  }
}

/** How much of each node's output is kept, for the error of a cluster that does not form. */
const LOG_TAIL = 16 * 1024;

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`raft cluster: timed out waiting for ${what}`);
}

export async function startRaftCluster(size = 3): Promise<RaftCluster> {
  const binary = await vaultBinary();
  const base = mkdtempSync(join(tmpdir(), 'signet-raft-'));
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ api: await freePort(), cluster: await freePort() })));
  const addresses = ports.map((p) => `http://127.0.0.1:${p.api}`);
  const logs = new Map<string, () => string>();
  const nodes: RaftNode[] = ports.map((p, i) => {
    const id = `node${i + 1}`;
    const dir = join(base, id);
    mkdirSync(join(dir, 'raft'), { recursive: true });
    const joins = addresses.filter((_, j) => j !== i).map((a) => `retry_join { leader_api_addr = "${a}" }`).join('\n');
    writeFileSync(join(dir, 'vault.hcl'), `
storage "raft" {
  path = "${join(dir, 'raft')}"
  node_id = "${id}"
  performance_multiplier = 1
  ${joins}
}
listener "tcp" {
  address = "127.0.0.1:${p.api}"
  cluster_address = "127.0.0.1:${p.cluster}"
  tls_disable = true
}
api_addr = "${addresses[i]}"
cluster_addr = "http://127.0.0.1:${p.cluster}"
disable_mlock = true
ui = false
`);
    const { VAULT_TOKEN: _t, VAULT_ADDR: _a, ...env } = process.env;
    // Info level: a cluster that fails to form says why (joins, elections, autopilot) in the error below.
    const child = spawn(binary, ['server', `-config=${join(dir, 'vault.hcl')}`], { env: { ...env, HOME: dir, VAULT_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const keep = (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-LOG_TAIL);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    logs.set(id, () => log);
    return {
      id, address: addresses[i]!, process: child,
      async stop(signal: NodeJS.Signals = 'SIGTERM') {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGCONT');
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      },
    };
  });
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
    rmSync(base, { recursive: true, force: true });
  };
  try {
    await until(async () => (await health(addresses[0]!)) === 501, 30_000, 'node1 to listen');
    const init = await vaultApi(addresses[0]!, undefined, 'PUT', 'sys/init', { secret_shares: 1, secret_threshold: 1 });
    const key = (init.keys as string[])[0]!;
    const rootToken = init.root_token as string;
    await vaultApi(addresses[0]!, undefined, 'PUT', 'sys/unseal', { key });
    await until(async () => (await health(addresses[0]!)) === 200, 30_000, 'node1 active');
    for (const address of addresses.slice(1)) {
      // retry_join joins a sealed node to the cluster; it then unseals with the cluster's key.
      await until(async () => {
        try {
          await vaultApi(address, undefined, 'PUT', 'sys/unseal', { key });
        } catch { /* not joined yet */ }
        const status = await health(address);
        return status === 429 || status === 473 || status === 200;
      }, 60_000, `${address} to join and unseal`);
    }
    const api = (address: string, method: string, path: string, body?: unknown) => vaultApi(address, rootToken, method, path, body);
    // Autopilot promotes a joined node to voter once it has been healthy for its stabilization time. Any node may be
    // asked (a standby forwards), and node1 may no longer be the active one: each is tried in turn.
    let seen = 'no answer yet';
    try {
      await until(async () => {
        for (const address of addresses) {
          try {
            const config = await api(address, 'GET', 'sys/storage/raft/configuration');
            const servers = ((config.data as { config?: { servers?: Array<{ node_id: string; voter: boolean; leader: boolean }> } })?.config?.servers ?? []);
            seen = `${address}: ${JSON.stringify(servers.map((s) => ({ node_id: s.node_id, voter: s.voter, leader: s.leader })))}`;
            return servers.length === size && servers.every((s) => s.voter);
          } catch (error) {
            seen = `${address}: ${(error as Error).message}`;
          }
        }
        return false;
      }, 60_000, 'all nodes to be raft voters');
    } catch (error) {
      const tails = [...logs].map(([id, log]) => `--- ${id} (last lines)\n${log().split('\n').slice(-15).join('\n')}`).join('\n');
      throw new Error(`${(error as Error).message}; last raft configuration seen: ${seen}\n${tails}`);
    }
    return {
      nodes, rootToken, api, stop,
      async leader() {
        for (const node of nodes) {
          if (node.process.exitCode !== null || node.process.signalCode !== null) continue;
          if ((await health(node.address)) === 200) return node;
        }
        return undefined;
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
