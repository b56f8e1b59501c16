// Reading audit files back (I/O) for `signet audit find`: the current file and its rotated siblings
// (audit.log.1, audit.log.2.gz, audit.log-20261130.gz, ...), gzipped or not (told by the gzip magic bytes, not the
// name), oldest first. Lines that are not audit records (a fragment left by a failed write) are skipped.

import { createReadStream, openSync, readSync, closeSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import { matches, parseRecord, type AuditFilter, type AuditRecord } from './record.ts';

/** The file and its rotated copies in the same directory, oldest first (by modification time). */
export function rotatedFiles(path: string): string[] {
  const dir = dirname(path);
  const base = basename(path);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [path];
  }
  const files = names
    .filter((n) => n === base || ((n.startsWith(`${base}.`) || n.startsWith(`${base}-`)) && !n.endsWith('.tmp')))
    .map((n) => join(dir, n))
    .flatMap((file) => {
      try {
        const st = statSync(file);
        return st.isFile() ? [{ file, mtime: st.mtimeMs, current: file === join(dir, base) }] : [];
      } catch {
        return [];
      }
    });
  // The current file last: it holds the newest records whatever its mtime says.
  files.sort((a, b) => Number(a.current) - Number(b.current) || a.mtime - b.mtime);
  return files.map((f) => f.file);
}

function isGzip(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(2);
    return readSync(fd, head, 0, 2, 0) === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

/** Calls `onRecord` for every audit record of the file, in file order. */
export async function readRecords(file: string, onRecord: (record: AuditRecord) => void): Promise<{ lines: number; skipped: number }> {
  const raw = createReadStream(file);
  const input = isGzip(file) ? raw.pipe(createGunzip()) : raw;
  raw.on('error', (error) => input.destroy(error));
  const lines = createInterface({ input, crlfDelay: Infinity });
  let count = 0;
  let skipped = 0;
  for await (const line of lines) {
    if (line === '') continue;
    count++;
    const record = parseRecord(line);
    if (record) onRecord(record);
    else skipped++;
  }
  return { lines: count, skipped };
}

/** The records of `files` that match `filter`, in time order. */
export async function findRecords(files: readonly string[], filter: AuditFilter): Promise<{ records: AuditRecord[]; skipped: number }> {
  const records: AuditRecord[] = [];
  let skipped = 0;
  for (const file of files) {
    const result = await readRecords(file, (record) => {
      if (matches(record, filter)) records.push(record);
    });
    skipped += result.skipped;
  }
  // Stable: records of the same millisecond keep their file order.
  records.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
  return { records, skipped };
}
