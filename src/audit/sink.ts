// Where audit records go (I/O): an append-only file and/or stdout. Each write() here is one batch of whole
// lines (see auditor.ts); a batch is written completely or reported failed.
//
// The file is opened O_APPEND|O_CREAT with mode 0600, and reopened (between writes, never under one in flight):
// on reopen() (SIGHUP), when its path no longer names the open file (moved by logrotate, deleted: checked every
// second), and after a failed write (so a sink that failed because its file was replaced recovers by itself).

import { closeSync, fstatSync, openSync, stat, write, writeSync, constants } from 'node:fs';

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
  #writing = false;
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
    if (!this.#writing && !this.#closed) {
      try {
        this.#open();
      } catch {
        // Retried before the next write, whose failure is then reported (and logged) with the error.
      }
    }
  }

  write(data: Buffer, done: (error?: NodeJS.ErrnoException) => void): void {
    if (this.#closed) {
      done(Object.assign(new Error('audit file is closed'), { code: 'ECLOSED' }));
      return;
    }
    try {
      if (this.#reopenWanted || this.#fd === undefined) this.#open();
    } catch (error) {
      this.#reopenWanted = true;
      done(error as NodeJS.ErrnoException);
      return;
    }
    const buffer = this.#fragment ? Buffer.concat([Buffer.from('\n'), data]) : data;
    const fd = this.#fd!;
    this.#writing = true;
    let offset = 0;
    const next = (): void => {
      write(fd, buffer, offset, buffer.length - offset, null, (error, written) => {
        if (!error && written > 0) offset += written;
        if (!error && offset < buffer.length && written > 0) {
          next();
          return;
        }
        this.#writing = false;
        const failure = error ?? (offset < buffer.length ? Object.assign(new Error('short write'), { code: 'EIO' }) : undefined);
        if (failure) {
          this.#fragment ||= offset > 0;
          // Try a fresh open before the next batch: the path may name a writable file again by then.
          this.#reopenWanted = true;
        } else {
          this.#fragment = false;
        }
        if (this.#reopenWanted && !this.#closed && !failure) {
          try { this.#open(); } catch { /* retried before the next write */ }
        }
        done(failure ?? undefined);
      });
    };
    next();
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

/**
 * Audit lines on stdout, for collectors that read a container's output. They are written synchronously, from
 * the main thread like pino's own lines, so that a batch never interleaves with a log line; each is a JSON
 * object whose `type` is "audit", which the operational log's lines never have.
 */
export class StdoutSink implements AuditSink {
  readonly name = 'stdout';
  readonly #fd: number;

  constructor(fd = 1) {
    this.#fd = fd;
  }

  write(data: Buffer, done: (error?: NodeJS.ErrnoException) => void): void {
    let offset = 0;
    let waits = 0;
    try {
      while (offset < data.length) {
        try {
          offset += writeSync(this.#fd, data, offset, data.length - offset);
        } catch (error) {
          // A non-blocking pipe whose reader is behind: wait for it a little (at most 1 s in all), as pino does.
          if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || ++waits > 100) throw error;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
        }
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
