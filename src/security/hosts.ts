// DNS-rebinding and browser defence (pure helpers, no I/O). A page on attacker.example can make a browser resolve
// its own name to 127.0.0.1 and then talk to Signet "same-origin", so the Content-Type preflight does not stop it.
// What it cannot change is the Host header: the browser sends attacker.example. Signet therefore answers only
// requests that name a loopback host (127.0.0.0/8, localhost, [::1]) or a name the operator listed in
// `allowed_hosts`.

import { BlockList, isIP } from 'node:net';
import { ConfigError } from '../errors.ts';

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
// Also matches the IPv4-mapped form ::ffff:127.x.y.z (BlockList applies IPv4 rules to it).
LOOPBACK.addAddress('::1', 'ipv6');

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * The host named by a Host header (`name`, `name:port`, `1.2.3.4:port`, `[v6]:port`), lower-cased and without
 * brackets; undefined when the header is missing or not of that shape.
 */
export function hostOf(header: string | undefined): string | undefined {
  if (header === undefined || header.length === 0 || header.length > 300) return undefined;
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]/@\s]+))(?::(\d{1,5}))?$/.exec(header);
  if (!match) return undefined;
  if (match[1] !== undefined) return isIP(match[1]) === 6 ? match[1].toLowerCase() : undefined;
  const host = match[2]!.toLowerCase();
  return isIP(host) === 4 || HOSTNAME.test(host) ? host : undefined;
}

/** 127.0.0.0/8, ::1 (and ::ffff:127.x.y.z), and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  const family = isIP(host);
  if (family === 4) return LOOPBACK.check(host, 'ipv4');
  if (family === 6) return LOOPBACK.check(host, 'ipv6');
  return false;
}

/** Whether a request with this Host header may be answered. */
export function hostAllowed(header: string | undefined, allowed: ReadonlySet<string>): boolean {
  const host = hostOf(header);
  if (host === undefined) return false;
  return isLoopbackHost(host) || allowed.has(host);
}

/** `allowed_hosts` from the configuration: host names or IP addresses, without scheme, port or path. */
export function parseAllowedHosts(raw: unknown): string[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ConfigError('allowed_hosts', 'must be a list of host names or IP addresses');
  return raw.map((entry, index) => {
    const field = `allowed_hosts[${index}]`;
    if (typeof entry !== 'string' || entry.length === 0) throw new ConfigError(field, 'must be a non-empty string');
    const bare = entry.startsWith('[') && entry.endsWith(']') ? entry.slice(1, -1) : entry;
    const host = bare.toLowerCase();
    if (isIP(host) === 0 && !HOSTNAME.test(host)) {
      throw new ConfigError(field, 'must be a host name or an IP address, without scheme, port, path or wildcard (e.g. signet.internal)');
    }
    return host;
  });
}

// --- listen addresses: the same rules, applied to where Signet listens -------------------------------------

/** True for 127.0.0.0/8, ::1, localhost, and unix sockets. */
export function isLoopbackListen(listen: string): boolean {
  if (listen.startsWith('unix:')) return true;
  return isLoopbackHost(splitHostPort(listen).host.toLowerCase());
}

export function splitHostPort(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  if (!match) throw new ConfigError('listen', 'must be host:port, [ipv6]:port or unix:/path/to.sock');
  const port = Number(match[3]);
  if (port > 65535) throw new ConfigError('listen', 'port must be at most 65535');
  return { host: match[1] ?? match[2]!, port };
}
