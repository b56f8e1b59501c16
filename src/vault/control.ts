// The control plane to Vault: auth, token lookup and renewal, key reads and operator commands, through
// node-vault. node-vault 0.12 is configured defensively: its own debug output is silenced (DEBUG=node-vault
// would print login bodies), VAULT_SKIP_VERIFY is parsed by Signet (node-vault treats "false" as true), every
// call has a timeout (node-vault has none by default), connections are kept alive, no header object is shared
// (a shared requestOptions.headers would freeze X-Vault-Token), and every error is mapped before it escapes.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import nodeVault from 'node-vault';
import type { VaultConfig } from './config.ts';
import { fromTransportError, fromVaultStatus } from './errors.ts';
import type { VaultCallObserver } from './http.ts';

type Body = { data?: Record<string, unknown>; auth?: Record<string, unknown> } & Record<string, unknown>;

export class VaultControl {
  readonly address: string;
  readonly mount: string;
  readonly #client: nodeVault.client;
  /** A client that never holds a token: logins must not send one, and must not disturb the current one. */
  readonly #loginClient: nodeVault.client;
  readonly #observe: VaultCallObserver;
  readonly #httpAgent: http.Agent;
  /** Told of a 403 to a call made with Signet's token (not to a login): the token may be gone. */
  onRefused: (token: string) => void = () => {};

  constructor(config: VaultConfig, options: { observe?: VaultCallObserver } = {}) {
    this.address = config.address;
    this.mount = config.mount;
    this.#observe = options.observe ?? (() => {});
    this.#httpAgent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const tls: Record<string, unknown> = {};
    if (config.caCert) tls.ca = readFileSync(config.caCert);
    if (config.clientCert) tls.cert = readFileSync(config.clientCert);
    if (config.clientKey) tls.key = readFileSync(config.clientKey);
    // rpDefaults is read by node-vault 0.12 but missing from its type definitions.
    const vaultOptions: nodeVault.VaultOptions & { rpDefaults: Record<string, unknown> } = {
      apiVersion: 'v1',
      endpoint: config.address,
      namespace: config.namespace,
      // A no-op debug: node-vault's own logs the bodies of login calls.
      debug: Object.assign(() => {}, { enabled: false }),
      rpDefaults: { strictSSL: !config.skipVerify, timeout: config.timeout * 1000 },
      requestOptions: {
        ...tls,
        strictSSL: !config.skipVerify,
        agentOptions: { keepAlive: true, maxSockets: 4 },
        httpAgent: this.#httpAgent,
        timeout: config.timeout * 1000,
      },
    };
    this.#client = nodeVault(vaultOptions);
    this.#loginClient = nodeVault(vaultOptions);
    this.#loginClient.token = '';
    // node-vault falls back to process.env.VAULT_TOKEN; Signet's auth decides which token is used.
    this.#client.token = '';
  }

  setToken(token: string): void {
    this.#client.token = token;
  }

  async #call(operation: string, run: () => Promise<Body>, token?: string): Promise<Body> {
    const started = performance.now();
    try {
      const body = await run();
      this.#observe(operation, (performance.now() - started) / 1000, 'ok');
      return body ?? {};
    } catch (error) {
      const seconds = (performance.now() - started) / 1000;
      const response = (error as { response?: { statusCode?: unknown; body?: { errors?: unknown } } }).response;
      if (response && typeof response.statusCode === 'number') {
        this.#observe(operation, seconds, response.statusCode >= 500 ? 'unreachable' : 'error');
        const errors = Array.isArray(response.body?.errors) ? (response.body.errors as unknown[]).map(String) : [];
        if (response.statusCode === 403 && token) this.onRefused(token);
        throw fromVaultStatus(operation, response.statusCode, errors);
      }
      this.#observe(operation, seconds, 'unreachable');
      throw fromTransportError(operation, this.address, error);
    }
  }

  read(operation: string, path: string): Promise<Body> {
    return this.#call(operation, () => this.#client.read(path), this.#client.token);
  }

  write(operation: string, path: string, data: Record<string, unknown>): Promise<Body> {
    return this.#call(operation, () => this.#client.write(path, data), this.#client.token);
  }

  /** A write with no token at all (a login): the current token is neither sent nor cleared while it runs. */
  login(operation: string, path: string, data: Record<string, unknown>): Promise<Body> {
    return this.#call(operation, () => this.#loginClient.write(path, data));
  }


  readTransitKey(name: string): Promise<Body> {
    return this.read('read_key', `${this.mount}/keys/${encodeURIComponent(name)}`);
  }

  /** Vault's health (no token needed); resolves for any answer, rejects when Vault is unreachable. */
  health(): Promise<Body> {
    return this.#call('health', () => this.#client.health({ standbyok: true, perfstandbyok: true }));
  }

  close(): void {
    this.#httpAgent.destroy();
  }
}
