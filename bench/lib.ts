// Helpers of the benchmark: child processes that announce themselves with one JSON line, /proc readings
// (RSS, CPU time), percentiles and a plain-text table. Nothing here is used by Signet itself.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { buildConfig, type Config } from '../src/config.ts';

/** Resident set size of a process, bytes (VmRSS of /proc/<pid>/status), or undefined when it cannot be read. */
export function rssBytes(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

let clockTicks: number | undefined;

/** User + system CPU time of a process (all its threads), seconds. */
export function cpuSeconds(pid: number): number {
  clockTicks ??= (() => {
    try {
      return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      return 100;
    }
  })();
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at state; utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return 0;
  }
}

/** CPU time all processes used, and the hypervisor took for other guests (user, nice, system, irq, softirq, steal; from /proc/stat), seconds. */
export function machineBusySeconds(): number {
  cpuSeconds(process.pid); // sets clockTicks
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // steal: time the hypervisor ran another guest while this one had work (a noisy neighbour slows every figure).
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
    return (user + nice + system + irq + softirq + steal) / clockTicks!;
  } catch {
    return 0;
  }
}

/**
 * Waits until the processes use less than `threshold` % of one core (sampled over 250 ms), at most `timeoutMs`.
 * A load generator that stops abandons its requests in flight, but the server still works them off (Vault signs
 * an abandoned batch_input to the end): the next measurement must not start before that work is done.
 */
export async function waitIdle(pids: number[], threshold = 10, timeoutMs = 60_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const before = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
    await sleep(250);
    const used = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) - before;
    if ((used / 0.25) * 100 < threshold) return true;
  }
  return false;
}

/** p-th percentile (0-100) of a sorted array, nearest rank. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** A growable list of float samples. */
export class Samples {
  #data = new Float64Array(1 << 14);
  #length = 0;

  push(value: number): void {
    if (this.#length === this.#data.length) {
      const bigger = new Float64Array(this.#data.length * 2);
      bigger.set(this.#data);
      this.#data = bigger;
    }
    this.#data[this.#length++] = value;
  }

  get length(): number {
    return this.#length;
  }

  sorted(): Float64Array {
    return this.#data.slice(0, this.#length).sort();
  }
}

export interface Child {
  process: ChildProcess;
  pid: number;
  /** The JSON object of the child's first JSON line on stdout. */
  hello: Record<string, unknown>;
  /** Resolves with the next JSON line the child prints after `hello`. */
  nextMessage(): Promise<Record<string, unknown>>;
  send(line: string): void;
  stop(): Promise<void>;
}

/**
 * Starts `node <script>` (the same Node binary as this process) with a pipe on stdin (the child exits when it
 * closes, so a dying parent takes it along) and waits for the first JSON line it prints on stdout. Other stdout
 * lines go to stderr with a prefix.
 */
export async function startChild(
  script: string,
  options: { env?: Record<string, string>; label: string; pinCpu?: number; timeoutMs?: number; nodeArgs?: string[] },
): Promise<Child> {
  const env = { ...process.env, ...options.env };
  const nodeArgs = [...(options.nodeArgs ?? []), script];
  const [command, args] = options.pinCpu !== undefined
    ? ['taskset', ['-c', String(options.pinCpu), process.execPath, ...nodeArgs]]
    : [process.execPath, nodeArgs];
  const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'inherit'] });
  const messages: Array<Record<string, unknown>> = [];
  const waiters: Array<{ resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }> = [];
  let exited: Error | undefined;
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    if (line.startsWith('{"bench":')) {
      const message = JSON.parse(line) as Record<string, unknown>;
      const waiter = waiters.shift();
      if (waiter) waiter.resolve(message);
      else messages.push(message);
    } else if (line.trim()) {
      process.stderr.write(`[${options.label}] ${line}\n`);
    }
  });
  const exitedPromise = new Promise<void>((resolve) => child.once('exit', (code, signal) => {
    exited = new Error(`${options.label} exited (code ${code}, signal ${signal})`);
    for (const waiter of waiters.splice(0)) waiter.reject(exited);
    resolve();
  }));
  child.on('error', (error) => {
    exited = error;
    for (const waiter of waiters.splice(0)) waiter.reject(error);
  });
  child.stdin!.on('error', () => { /* the child went away; its exit is reported above */ });

  const nextMessage = (timeoutMs = options.timeoutMs ?? 120_000): Promise<Record<string, unknown>> => {
    const queued = messages.shift();
    if (queued) return Promise.resolve(queued);
    if (exited) return Promise.reject(exited);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${options.label}: no answer within ${timeoutMs} ms`)), timeoutMs);
      waiters.push({
        resolve: (m) => { clearTimeout(timer); resolve(m); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
    });
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.stdin!.end();
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exitedPromise;
    clearTimeout(timer);
  };

  let hello: Record<string, unknown>;
  try {
    hello = await nextMessage(options.timeoutMs ?? 60_000);
  } catch (error) {
    await stop();
    throw error;
  }
  // With taskset, taskset exec()s node, so the pid is node's own.
  return { process: child, pid: child.pid!, hello, nextMessage: () => nextMessage(), send: (line) => child.stdin!.write(`${line}\n`), stop };
}

/** Announces a child's message on stdout, in the form startChild() reads. */
export function announce(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ bench: true, ...message })}\n`);
}

/** Renders rows as a left/right aligned text table. Numbers are right-aligned. */
export function table(header: string[], rows: Array<Array<string | number>>, rightAlign: boolean[] = []): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const render = (row: string[]) => row.map((cell, i) => (rightAlign[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  return [render(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(render)].join('\n');
}

export function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

export function thousands(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : 'n/a';
}

export function mb(bytes: number | undefined): string {
  return bytes === undefined ? 'n/a' : (bytes / 1024 / 1024).toFixed(1);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The Signet configuration of a bench child process, from BENCH_VAULT_ADDR, BENCH_VAULT_TOKEN and BENCH_KEYS;
 * BENCH_AUDIT='{"file": …, "subject_key_file": …}' turns the audit trail on.
 */
export function benchConfig(): Config {
  const keys = JSON.parse(process.env.BENCH_KEYS ?? '[]') as Array<Record<string, unknown>>;
  return buildConfig({
    listen: '127.0.0.1:0',
    vault: { address: process.env.BENCH_VAULT_ADDR },
    keys,
    log_level: 'warn',
    ...(process.env.BENCH_AUDIT ? { audit: JSON.parse(process.env.BENCH_AUDIT) as unknown } : {}),
  }, { VAULT_TOKEN: process.env.BENCH_VAULT_TOKEN });
}
