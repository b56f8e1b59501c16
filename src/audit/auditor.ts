// The audit trail of a running Signet: every sign path calls signDecision() once per decision (per token, so per
// item of a batch) and awaits what it returns before answering. Records are group-committed: the records of one
// event-loop turn are written with one write() per sink, after the turn (setImmediate), while the records
// arriving during that write wait for the next one. Each caller's promise settles when its batch is written, so a
// token is never handed out before its record is in the file (in the OS's page cache, as Vault's file audit
// device does: no fsync).
//
// Fail closed (the default): when a batch cannot be written to every sink, each of its signs is refused with 503
// (AuditUnavailableError), counted in signet_audit_records_failed_total, and logged. With fail_closed: false the
// signs are answered anyway, and the failure is still counted and logged.

import { createSecretKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { ConfigError, SignetError } from '../errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { AuditConfig } from './config.ts';
import { buildRecord, serializeRecord, subjectHasher, type SignDecision, type SubjectHasher } from './record.ts';
import { FileSink, StdoutSink, type AuditSink } from './sink.ts';

/** 503: the record of this sign could not be written, so its token is not handed out. */
export class AuditUnavailableError extends SignetError {
  readonly retryAfterSeconds = 5;
  constructor(message: string) {
    super(503, 'audit_unavailable', message);
  }
}

export const MIN_SUBJECT_KEY_BYTES = 32;

/** The HMAC secret for `sub`: the file's bytes, without a trailing newline. */
export function readSubjectKey(path: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new ConfigError('audit.subject_key_file', `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
  if (end < MIN_SUBJECT_KEY_BYTES) {
    throw new ConfigError('audit.subject_key_file', `holds ${end} bytes; the secret must be at least ${MIN_SUBJECT_KEY_BYTES} (e.g. head -c 32 /dev/urandom | base64 > FILE)`);
  }
  return bytes.subarray(0, end);
}

interface Batch {
  lines: string[];
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  // A batch whose every sign was already answered (none awaits it) must not become an unhandled rejection.
  promise.catch(() => undefined);
  return { lines: [], promise, resolve, reject };
}

const LOG_EVERY_MS = 10_000;

export class Auditor {
  readonly enabled: boolean;
  readonly failClosed: boolean;
  readonly #config: AuditConfig | undefined;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  #hashSubject: SubjectHasher | undefined;
  #sinks: AuditSink[] = [];
  #batch: Batch | undefined;
  #scheduled = false;
  #writing = false;
  #failing = false;
  #lastFailureLog = 0;
  #lostSinceLog = 0;
  #idle: Array<() => void> = [];

  constructor(config: AuditConfig | undefined, log: Logger, metrics: Metrics) {
    this.enabled = config !== undefined;
    this.failClosed = config?.failClosed ?? true;
    this.#config = config;
    this.#log = log.child({ component: 'audit' });
    this.#metrics = metrics;
  }

  /** Reads the secret and opens the sinks; throws a ConfigError naming the field when one cannot be used. */
  open(sinks?: AuditSink[]): void {
    const config = this.#config;
    if (!config) return;
    this.#hashSubject = subjectHasher(createSecretKey(readSubjectKey(config.subjectKeyFile)));
    if (sinks) {
      this.#sinks = sinks;
      return;
    }
    if (config.file) {
      let sink: FileSink;
      try {
        sink = new FileSink(config.file);
      } catch (error) {
        throw new ConfigError('audit.file', `cannot open ${config.file} for appending (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      this.#sinks.push(sink);
      try {
        if (statSync(config.subjectKeyFile).mode & 0o044) {
          this.#log.warn({ event: 'subject_key_readable', file: config.subjectKeyFile }, 'audit.subject_key_file is readable by other users; chmod 0600 it');
        }
        if ((sink.mode ?? 0) & 0o066) {
          this.#log.warn({ event: 'audit_file_mode', file: config.file }, 'audit.file is readable or writable by other users (created 0600 when absent); chmod 0600 it');
        }
      } catch { /* only a warning */ }
    }
    if (config.stdout) this.#sinks.push(new StdoutSink());
    this.#log.info({ event: 'audit_on', file: config.file, stdout: config.stdout, fail_closed: config.failClosed }, 'audit trail on: one record per sign decision');
  }

  /**
   * Records one sign decision. Returns undefined when auditing is off (nothing to wait for); else a promise that
   * resolves once the record is written, and rejects with AuditUnavailableError when it could not be and
   * auditing fails closed. The caller must not hand out the token before it resolves.
   */
  signDecision(decision: SignDecision): Promise<void> | undefined {
    if (!this.enabled) return undefined;
    if (!this.#hashSubject) throw new Error('Auditor.signDecision before open()');
    const line = serializeRecord(buildRecord(decision, this.#hashSubject, Date.now()));
    const batch = this.#batch ??= newBatch();
    batch.lines.push(line);
    this.#schedule();
    return batch.promise;
  }

  /** SIGHUP: reopen the audit file (logrotate's postrotate). */
  reopen(): void {
    for (const sink of this.#sinks) sink.reopen();
    if (this.enabled) this.#log.info({ event: 'audit_reopen' }, 'audit file reopened');
  }

  #schedule(): void {
    if (this.#scheduled || this.#writing) return;
    this.#scheduled = true;
    setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    const batch = this.#batch;
    if (!batch) {
      for (const notify of this.#idle.splice(0)) notify();
      return;
    }
    this.#batch = undefined;
    this.#writing = true;
    const data = Buffer.from(batch.lines.join(''), 'utf8');
    const count = batch.lines.length;
    let left = this.#sinks.length;
    const errors: Array<{ sink: string; code: string }> = [];
    const finished = () => {
      this.#writing = false;
      this.#settle(batch, count, errors);
      if (this.#batch) this.#schedule();
      else for (const notify of this.#idle.splice(0)) notify();
    };
    if (left === 0) {
      finished();
      return;
    }
    for (const sink of this.#sinks) {
      sink.write(data, (error) => {
        if (error) {
          errors.push({ sink: sink.name, code: error.code ?? 'error' });
          this.#metrics.auditFailed.inc({ sink: sink.name }, count);
        } else {
          this.#metrics.auditWritten.inc({ sink: sink.name }, count);
          this.#metrics.auditBytes.inc({ sink: sink.name }, data.length);
        }
        if (--left === 0) finished();
      });
    }
  };

  #settle(batch: Batch, count: number, errors: Array<{ sink: string; code: string }>): void {
    if (errors.length === 0) {
      if (this.#failing) {
        this.#failing = false;
        this.#log.warn({ event: 'audit_recovered', lost: this.#lostSinceLog }, 'audit records are written again: signing resumed');
        this.#lostSinceLog = 0;
      }
      batch.resolve();
      return;
    }
    const where = errors.map((e) => `audit.${e.sink}: ${e.code}`).join(', ');
    this.#lostSinceLog += count;
    const now = Date.now();
    if (!this.#failing || now - this.#lastFailureLog >= LOG_EVERY_MS) {
      this.#log.error(
        { event: 'audit_write_failed', file: this.#config?.file, errors, records: this.#lostSinceLog, fail_closed: this.failClosed },
        this.failClosed
          ? `audit records cannot be written (${where}): signs are refused with 503 until they can`
          : `audit records cannot be written (${where}); audit.fail_closed is false, so tokens are still issued WITHOUT a record`,
      );
      this.#lastFailureLog = now;
      this.#lostSinceLog = 0;
    }
    this.#failing = true;
    if (this.failClosed) {
      batch.reject(new AuditUnavailableError(`the audit record of this sign could not be written (${where}), so no token was issued; operator: see Signet's log and signet_audit_records_failed_total`));
    } else {
      batch.resolve();
    }
  }

  /** Waits for the records already handed in to be written (or to fail), then closes the sinks. */
  async close(): Promise<void> {
    if (this.#writing || this.#scheduled || this.#batch) await new Promise<void>((resolve) => this.#idle.push(resolve));
    for (const sink of this.#sinks) sink.close();
    this.#sinks = [];
  }
}
