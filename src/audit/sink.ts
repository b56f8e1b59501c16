// Where audit records go (I/O): an append-only file and/or stdout. Each write() here is one batch of whole
// lines (see auditor.ts), written completely or reported failed.
//
// Writes are synchronous, one write(2) per batch (so per event-loop turn at most), not per record: appending a
// few KB to the page cache takes microseconds, while handing the write to libuv's thread pool costs a thread
// wake-up each way, which on a busy machine measured several times more than the write itself (see the README's
// Audit trail section). The price: a filesystem that stalls (a hung NFS mount) stalls Signet with it; keep the
// audit file on local disk.
//
// The file is opened O_APPEND|O_CREAT with mode 0600, and reopened between writes: on reopen() (SIGHUP), when its
// path no longer names the open file (moved by logrotate, deleted: checked every second), and after a failed
// write (so a sink that failed because its file was replaced recovers by itself).

import { closeSync, fstatSync, openSync, stat, writeSync, constants } from 'node:fs';

export interface AuditSink {
  readonly name: 'file' | 'stdout';
  /** Writes `data` completely, then calls `done` once, with the error when it could not. */
  write(data: Buffer, done: (error?: NodeJS.ErrnoException) => void): void;
  /** Reopens the file (SIGHUP): the next write goes to whatever file the path names then. */
  reopen(): void;
  close(): void;
}

const FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT;

export class FileSink implements AuditSink {
  readonly name = 'file';
  readonly path: string;
  #fd: number | undefined;
  #ino = 0;
  #dev = 0;
  #reopenWanted = false;
  /** The last write failed after some of its bytes reached the file: the next batch starts on a new line. */
  #fragment = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  /** Opens the file now: throws (with the errno) when it cannot be opened, so start-up names the problem. */
  constructor(path: string, checkIntervalMs = 1000) {
    this.path = path;
    this.#open();
    this.#timer = setInterval(() => this.#checkMoved(), checkIntervalMs);
    this.#timer.unref();
  }

  /** The file mode of the open file (for the start-up warning about a readable file). */
  get mode(): number | undefined {
    return this.#fd === undefined ? undefined : fstatSync(this.#fd).mode;
  }

  #open(): void {
    const fd = openSync(this.path, FLAGS, 0o600);
    const st = fstatSync(fd);
    if (this.#fd !== undefined) {
      try { closeSync(this.#fd); } catch { /* already gone */ }
    }
    this.#fd = fd;
    if (st.ino !== this.#ino || st.dev !== this.#dev) this.#fragment = false;
    this.#ino = st.ino;
    this.#dev = st.dev;
    this.#reopenWanted = false;
  }

  #checkMoved(): void {
    if (this.#closed || this.#reopenWanted) return;
    stat(this.path, (error, st) => {
      if (this.#closed) return;
      if (error || st.ino !== this.#ino || st.dev !== this.#dev) this.reopen();
    });
  }

  reopen(): void {
    this.#reopenWanted = true;
    if (!this.#closed) {
      try {
        this.#open();
      } catch {
        // Retried before the next write, whose failure is then reported (and logged) with the error.
      }
    }
  }

  write(data: Buffer, done: (error?: NodeJS.ErrnoException) => void): void {
    let failure: NodeJS.ErrnoException | undefined;
    let offset = 0;
    const buffer = this.#fragment ? Buffer.concat([Buffer.from('\n'), data]) : data;
    try {
      if (this.#closed) throw Object.assign(new Error('audit file is closed'), { code: 'ECLOSED' });
      if (this.#reopenWanted || this.#fd === undefined) this.#open();
      while (offset < buffer.length) {
        const written = writeSync(this.#fd!, buffer, offset, buffer.length - offset);
        if (written <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
        offset += written;
      }
      this.#fragment = false;
    } catch (error) {
      failure = error as NodeJS.ErrnoException;
      this.#fragment ||= offset > 0;
      this.#reopenWanted = true;
    }
    done(failure);
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#fd !== undefined) {
      try { closeSync(this.#fd); } catch { /* already closed */ }
      this.#fd = undefined;
    }
  }
}

/** Writes to a pipe of at most this many bytes are atomic (POSIX PIPE_BUF on Linux). */
const PIPE_BUF = 4096;

/**
 * Audit lines on stdout, for collectors that read a container's output. pino writes the operational log to the
 * same descriptor, from its own buffer; so that no log line can land inside an audit line (or the reverse), a
 * batch is written in chunks of whole lines of at most PIPE_BUF bytes, each of which a pipe writes atomically.
 * Each line is a JSON object whose `type` is "audit", which the operational log's lines never have.
 */
export class StdoutSink implements AuditSink {
  readonly name = 'stdout';
  readonly #fd: number;

  constructor(fd = 1) {
    this.#fd = fd;
  }

  #writeAll(data: Buffer, start: number, end: number): void {
    let offset = start;
    let waits = 0;
    while (offset < end) {
      try {
        offset += writeSync(this.#fd, data, offset, end - offset);
      } catch (error) {
        // A non-blocking pipe whose reader is behind: wait for it a little (at most 1 s in all), as pino does.
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || ++waits > 100) throw error;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      }
    }
  }

  write(data: Buffer, done: (error?: NodeJS.ErrnoException) => void): void {
    try {
      let start = 0;
      while (start < data.length) {
        // The longest run of whole lines that fits in PIPE_BUF (or one longer line on its own).
        let end = start;
        let next = data.indexOf(0x0a, end);
        while (next !== -1 && next + 1 - start <= PIPE_BUF) {
          end = next + 1;
          next = data.indexOf(0x0a, end);
        }
        if (end === start) end = next === -1 ? data.length : next + 1;
        this.#writeAll(data, start, end);
        start = end;
      }
    } catch (error) {
      queueMicrotask(() => done(error as NodeJS.ErrnoException));
      return;
    }
    queueMicrotask(() => done());
  }

  reopen(): void { /* stdout is not reopened */ }

  close(): void { /* stdout stays open */ }
}
