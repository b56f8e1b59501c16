// What the Kubernetes signer needs to know about each cluster, and what kube-apiserver accepts from an external
// signer: src/config.ts maps the configuration file's `kubernetes:` entries onto these and checks them.

import type { JwsAlg } from '../jwt/algorithms.ts';

export interface KubernetesClusterConfig {
  /** A label for logs and metrics. */
  name: string;
  /** Unix socket kube-apiserver's --service-account-signing-endpoint names. */
  socket: string;
  /** Mode of the socket (default 0600: only Signet's user, which kube-apiserver must run as, or root). */
  socketMode: number;
  /** Group that owns the socket (name or gid). */
  socketGroup?: string;
  /** The Transit key (one of keys[]) that signs this cluster's tokens; no other caller may sign with it. */
  key: string;
}

/** What kube-apiserver accepts from an external signer (the ExternalJWTSigner contract). */
export const KUBERNETES_ALGS: readonly JwsAlg[] = ['RS256', 'ES256', 'ES384', 'ES512'];
/** kube-apiserver refuses to start when the signer's longest token lifetime is under 10 minutes. */
export const KUBERNETES_MIN_MAX_TTL = 600;
export const KUBERNETES_DEFAULT_SOCKET_MODE = 0o600;
