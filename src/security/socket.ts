// Listening on a unix socket: whoever can connect can sign, so the socket gets a restrictive mode (listen_mode,
// default 0660) and optionally a group (listen_group) for the callers allowed to use it. The mode is in place
// from the moment the socket exists: the umask is narrowed around bind(), then chmod/chown make it exact.

import { chmodSync, chownSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { execFileSync } from 'node:child_process';
import type { FastifyInstance } from 'fastify';
import { ConfigError } from '../errors.ts';

export const DEFAULT_LISTEN_MODE = 0o660;

/** listen_mode from the configuration: an octal string ("0660", "660"). */
export function parseListenMode(raw: unknown, listen: string, callersConfigured: boolean): number {
  if (raw === undefined || raw === null) return DEFAULT_LISTEN_MODE;
  if (typeof raw !== 'string') {
    throw new ConfigError('listen_mode', 'must be an octal string such as "0660" (quoted: YAML reads 0660 unquoted as the decimal number 660)');
  }
  if (!/^0?[0-7]{3}$/.test(raw)) throw new ConfigError('listen_mode', 'must be an octal mode such as "0660" or "0600"');
  if (!listen.startsWith('unix:')) throw new ConfigError('listen_mode', 'applies only to a unix socket (listen: unix:/path)');
  const mode = Number.parseInt(raw, 8);
  if ((mode & 0o002) !== 0 && !callersConfigured) {
    throw new ConfigError(
      'listen_mode',
      `${raw} lets every local user connect, and whoever can connect can sign; drop the write bit for others, or configure callers.tokens_file`,
    );
  }
  return mode;
}

/** A group name or numeric gid → gid (the group database: /etc/group, then getent for NSS groups). */
export function resolveGroup(group: string, groupFile = '/etc/group'): number {
  if (/^\d+$/.test(group)) return Number(group);
  try {
    for (const line of readFileSync(groupFile, 'utf8').split('\n')) {
      const [name, , gid] = line.split(':');
      if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
    }
  } catch {
    // No readable group file: ask getent below.
  }
  try {
    const gid = execFileSync('getent', ['group', group], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).split(':')[2];
    if (gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  } catch {
    // Not found.
  }
  throw new ConfigError('listen_group', `no group named "${group}" (give a group name or a numeric gid)`);
}

/**
 * A socket file left behind by a process that died without closing it (SIGKILL, OOM kill) would make the next
 * start fail with EADDRINUSE and the sidecar crash-loop. A socket nobody answers on (connection refused) is
 * removed; one that answers belongs to a running process (another Signet), which stops start-up; a path that is
 * not a socket is never removed.
 */
export async function clearStaleSocket(path: string): Promise<'absent' | 'removed'> {
  let stat;
  try {
    stat = lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw error;
  }
  if (!stat.isSocket()) {
    throw new ConfigError('listen', `${path} exists and is not a socket; Signet will not remove it: choose another path or remove it`);
  }
  const answered = await new Promise<boolean>((resolve) => {
    const socket = connect({ path });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      socket.destroy();
      // ECONNREFUSED: nobody listens. Anything else (EACCES…): do not guess, treat it as in use.
      resolve(error.code !== 'ECONNREFUSED');
    });
  });
  if (answered) {
    throw new ConfigError('listen', `${path}: another process is listening on this socket (another Signet?); stop it or choose another path`);
  }
  unlinkSync(path);
  return 'removed';
}

/** Listens on `path` with `mode` (and `group`), never looser than `mode` even for an instant. */
export async function listenUnixSocket(app: FastifyInstance, path: string, mode: number, group?: string): Promise<void> {
  const gid = group === undefined ? undefined : resolveGroup(group);
  // Start the app first (Vault login, key loading), so that the umask is narrowed only around the bind itself.
  await app.ready();
  if ((await clearStaleSocket(path)) === 'removed') {
    app.log.warn({ event: 'stale_socket_removed', path }, `removed a stale socket at ${path} left by a process that exited without closing it`);
  }
  const previous = process.umask(~mode & 0o777);
  try {
    await app.listen({ path });
  } finally {
    process.umask(previous);
  }
  chmodSync(path, mode);
  if (gid !== undefined) {
    try {
      chownSync(path, -1, gid);
    } catch (error) {
      await app.close();
      throw new ConfigError('listen_group', `cannot give the socket to group "${group}" (${(error as NodeJS.ErrnoException).code ?? 'error'}): Signet's user must belong to it`);
    }
  }
}
