// Maps every failure of a Vault call to a Signet error before anything logs it. Raw errors of HTTP clients
// (node-vault's axios errors in particular) carry the request headers, X-Vault-Token included, so they are
// never kept as a cause, logged or rethrown: only the operation, the status and Vault's own message survive.

import { SignetError, VaultResponseError, VaultUnavailableError } from '../errors.ts';

/** Vault answered with an error status. */
/** Vault's messages on one line: "2 errors occurred:\n\t* permission denied\n\t* invalid token" → "permission denied; invalid token". */
export function vaultMessage(vaultErrors: readonly string[]): string {
  return vaultErrors
    .map((e) => e.replace(/^\s*\d+ errors? occurred:\s*/, '').split(/\s*\n\s*\*?\s*/).map((part) => part.replace(/^\*\s*/, '').trim()).filter(Boolean).join('; '))
    .join('; ')
    .slice(0, 300);
}

export function fromVaultStatus(operation: string, status: number, vaultErrors: readonly string[] = []): SignetError {
  const message = vaultMessage(vaultErrors);
  const detail = message ? `: ${message}` : '';
  if (status === 403 || status === 401) {
    return new VaultUnavailableError(
      operation,
      `Vault refused Signet's token for ${operation} (HTTP ${status}${detail}); check the token and that its policy includes vault-policy.hcl`,
      2,
      'refused',
    );
  }
  if (status === 429 || status >= 500) {
    const sealed = status === 503 ? ' (sealed, standby without a leader, or overloaded)' : '';
    return new VaultUnavailableError(operation, `Vault is unavailable for ${operation}${sealed} (HTTP ${status}${detail})`, 1);
  }
  return new VaultResponseError(`Vault refused ${operation} (HTTP ${status}${detail})`, status);
}

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
  ETIMEDOUT: 'timed out',
  ECONNABORTED: 'timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
  UND_ERR_HEADERS_TIMEOUT: 'timed out waiting for an answer',
  UND_ERR_BODY_TIMEOUT: 'timed out reading the answer',
  UND_ERR_SOCKET: 'connection closed',
  UND_ERR_CLOSED: 'client closed',
  UND_ERR_ABORTED: 'timed out',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host lookup failed',
  EHOSTUNREACH: 'host unreachable',
  CERT_HAS_EXPIRED: 'TLS certificate expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'TLS certificate not trusted (set VAULT_CACERT)',
  SELF_SIGNED_CERT_IN_CHAIN: 'TLS certificate not trusted (set VAULT_CACERT)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS certificate not trusted (set VAULT_CACERT)',
};

/** A transport failure (no HTTP answer): Vault is unreachable from here. */
export function fromTransportError(operation: string, address: string, error: unknown): SignetError {
  if (error instanceof SignetError) return error;
  const raw = error as { code?: unknown; name?: unknown; cause?: { code?: unknown } } | null;
  const code = typeof raw?.code === 'string' ? raw.code
    : typeof raw?.cause?.code === 'string' ? raw.cause.code
      : raw?.name === 'TimeoutError' || raw?.name === 'AbortError' ? 'ETIMEDOUT' : 'unknown';
  const reason = NETWORK_CODES[code] ?? `network error ${code}`;
  return new VaultUnavailableError(operation, `Vault at ${address} is unreachable for ${operation} (${reason})`, 1, 'unreachable');
}
