// What the Vault layer needs to know: where Vault is, how to reach it, how to log in. src/config.ts maps the
// configuration file's `vault:` block (and the VAULT_* variables) onto these; nothing here reads a file.

export type AuthConfig =
  | { method: 'token'; tokenFile?: string; token?: string }
  | { method: 'approle'; mount: string; roleId?: string; roleIdFile?: string; secretIdFile?: string }
  | { method: 'kubernetes'; mount: string; role: string; tokenFile: string }
  | { method: 'jwt'; mount: string; role: string; tokenFile: string };

export interface VaultConfig {
  address: string;
  mount: string;
  namespace?: string;
  caCert?: string;
  clientCert?: string;
  clientKey?: string;
  skipVerify: boolean;
  /** Timeout of control-plane calls (auth, key reads), seconds. */
  timeout: number;
  /** Timeout of one sign call on the hot path, seconds. */
  signTimeout: number;
  auth: AuthConfig;
}
