// Runs Signet: build the app, listen, and shut down cleanly on SIGTERM/SIGINT (stop accepting, drain in-flight
// requests, exit within a bounded time).

import type { FastifyInstance } from 'fastify';
import { buildApp, buildPublicApp, type AppDeps } from './app.ts';
import type { Config } from './config.ts';
import { startKubernetesSigners, type KubernetesSigner } from './kubernetes/server.ts';
import { splitHostPort } from './security/hosts.ts';
import { listenUnixSocket } from './security/socket.ts';

export const SHUTDOWN_GRACE_MS = 10_000;

export async function listen(app: FastifyInstance, config: Config): Promise<string> {
  if (config.listen.startsWith('unix:')) {
    // Only the owner and its group (listen_mode, listen_group) may connect: whoever can connect can sign.
    await listenUnixSocket(app, config.listen.slice('unix:'.length), config.listenMode, config.listenGroup);
    return config.listen;
  }
  const { host, port } = splitHostPort(config.listen);
  return app.listen({ host, port });
}

export interface Running {
  app: FastifyInstance;
  address: string;
  /** The read-only public listener, when public_listen is set. */
  publicApp?: FastifyInstance;
  publicAddress?: string;
  /** The ExternalJWTSigner sockets, one per configured kubernetes cluster. */
  kubernetes: KubernetesSigner[];
  close(): Promise<void>;
}

export async function serve(config: Config, deps: AppDeps = {}): Promise<Running> {
  const app = await buildApp(config, deps);
  let address: string;
  try {
    address = await listen(app, config);
  } catch (error) {
    // Nothing listens: stop what start-up began (Vault clients, timers) before reporting why.
    await app.close();
    throw error;
  }
  app.log.info({ event: 'listening', address, keys: config.keys.map((k) => k.name), vault: config.vault.address }, `Signet listening on ${address}`);
  let publicApp: FastifyInstance | undefined;
  let publicAddress: string | undefined;
  if (config.publicListen) {
    publicApp = await buildPublicApp(config, app.services);
    const { host, port } = splitHostPort(config.publicListen);
    publicAddress = await publicApp.listen({ host, port });
    app.log.info({ event: 'listening_public', address: publicAddress }, `read-only public listener (JWKS, discovery, health, metrics) on ${publicAddress}`);
  }
  let kubernetes: KubernetesSigner[];
  try {
    kubernetes = await startKubernetesSigners(app.services);
  } catch (error) {
    await publicApp?.close();
    await app.close();
    throw error;
  }
  // logrotate's postrotate sends SIGHUP: reopen the audit file. (Only with an audit file: otherwise SIGHUP keeps
  // its default action.)
  const onHangup = () => app.services.audit.reopen();
  if (config.audit?.file) process.on('SIGHUP', onHangup);
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      process.off('SIGHUP', onHangup);
      const timer = setTimeout(() => {
        app.log.error({ event: 'shutdown_timeout' }, `in-flight requests did not finish within ${SHUTDOWN_GRACE_MS} ms; exiting`);
        process.exit(1);
      }, SHUTDOWN_GRACE_MS);
      timer.unref();
      await Promise.all(kubernetes.map((k) => k.close()));
      await publicApp?.close();
      await app.close();
      clearTimeout(timer);
    })();
    return closing;
  };
  return { app, address, publicApp, publicAddress, kubernetes, close };
}
