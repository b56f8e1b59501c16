// Python's hvac (HashiCorp's Vault client library for Python, written by nobody here), pinned, in its own
// virtual environment under the shared cache (like the Vault build), so reruns start at once. The environment is
// built in a temporary directory and renamed into place, so a half-built one is never used.

import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { run, type RunResult } from './ops.ts';

export const HVAC_VERSION = '2.4.0';

let ready: Promise<string> | undefined;

/** The venv's python, with hvac==HVAC_VERSION installed (built once per machine). */
export function hvacPython(): Promise<string> {
  ready ??= (async () => {
    const cache = process.env.SIGNET_CACHE_DIR ?? join(homedir(), '.cache', 'signet');
    const dir = join(cache, `hvac-${HVAC_VERSION}`);
    const python = join(dir, 'bin', 'python');
    if (existsSync(python)) return python;
    mkdirSync(cache, { recursive: true });
    const building = `${dir}.tmp-${process.pid}`;
    rmSync(building, { recursive: true, force: true });
    const venv = await run('python3', ['-m', 'venv', building], { timeoutMs: 120_000 });
    if (venv.code !== 0) throw new Error(`python3 -m venv failed:\n${venv.stdout}${venv.stderr}`);
    const pip = await run(join(building, 'bin', 'python'), ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', `hvac==${HVAC_VERSION}`], { timeoutMs: 300_000 });
    if (pip.code !== 0) throw new Error(`pip install hvac==${HVAC_VERSION} failed:\n${pip.stdout}${pip.stderr}`);
    try {
      renameSync(building, dir);
    } catch (error) {
      // Another test process finished first: use its environment.
      rmSync(building, { recursive: true, force: true });
      if (!existsSync(python)) throw error;
    }
    return python;
  })();
  return ready;
}

/** Runs a Python script with hvac importable; `env` adds to a minimal environment (no VAULT_* of the caller's). */
export async function runHvac(script: string, env: Record<string, string>): Promise<RunResult> {
  const python = await hvacPython();
  return run(python, ['-c', script], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent', ...env }, timeoutMs: 60_000 });
}
