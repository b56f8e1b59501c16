# syntax=docker/dockerfile:1
#
# Signet: a sidecar that signs JWTs with keys that never leave Vault's Transit engine.
#
#   docker build -t signet:0.1.0 .
#   docker run --read-only -e VAULT_ADDR=https://vault.example:8200 -e VAULT_TOKEN=... \
#     -v "$PWD/signet.yaml:/etc/signet/signet.yaml:ro" signet:0.1.0
#
# Listening: whoever reaches Signet can sign tokens, so it listens on 127.0.0.1:8250 inside the container and
# refuses a non-loopback address unless caller authentication (callers.tokens_file) is configured. Loopback is what
# a sidecar wants: containers of one Kubernetes pod share its network namespace, so the app reaches Signet at
# 127.0.0.1:8250 and nothing outside the pod can (see deploy/kubernetes/). With plain Docker, run the app in
# Signet's network namespace (`--network container:signet`) or share a unix socket through a volume
# (listen: unix:/run/signet/signet.sock). EXPOSE 8250 documents the port; publishing it (-p 8250:8250) reaches
# Signet only when it listens on 0.0.0.0:8250 with callers.tokens_file (and allowed_hosts for the names used).
#
# Public listener: with public_listen: 0.0.0.0:8251 (or SIGNET_PUBLIC_LISTEN), Signet also serves a read-only
# listener with only GET /healthz, /readyz, /metrics, the JWKS (/.well-known/jwks.json, /v1/jwks) and
# /.well-known/openid-configuration, no Host check and no way to sign: that is the port for verifiers, Prometheus
# and the kubelet's httpGet probes (deploy/kubernetes/ uses it). EXPOSE 8251 documents it; the default
# configuration leaves it off.
#
# Read-only root filesystem: Signet writes nothing to disk (logs go to stdout); the bundle belongs to root and is
# read-only for the runtime user. Only a unix socket needs a writable directory (mount an emptyDir or a tmpfs at
# its directory). The HEALTHCHECK runs dist/healthcheck.mjs (bin/healthcheck.js, bundled) with Node itself, in
# exec form (no shell), against the signing listener (loopback or unix socket), so it needs no public listener.

# ---- build: the production bundle (npm run build) -------------------------------------------------------------
# All dependencies from the lockfile (esbuild is a dev dependency), no install scripts; esbuild bundles src/cli.ts
# and bin/healthcheck.js with every dependency into dist/*.mjs, so the runtime stage needs no node_modules at all.
# The Node version is exact, and the same as the tests run on (package.json's `node` dev dependency).
FROM node:24.21.0-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY scripts/build.ts ./scripts/
RUN node scripts/build.ts

# ---- runtime ---------------------------------------------------------------------------------------------------
# The same exact base. (Distroless Node 24 was considered: see README "Build and image" for why this is not it yet.)
FROM node:24.21.0-bookworm-slim AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
# The repository URL: docker build --build-arg SOURCE=https://… --build-arg REVISION=$(git rev-parse HEAD)
ARG SOURCE=""
LABEL org.opencontainers.image.title="signet" \
      org.opencontainers.image.description="Localhost sidecar that signs JWTs with keys that never leave HashiCorp Vault's Transit engine" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MPL-2.0" \
      org.opencontainers.image.base.name="docker.io/library/node:24.21.0-bookworm-slim"

# Memory (npm run bench:footprint, README "Footprint"): MALLOC_ARENA_MAX=2 caps glibc's per-thread malloc arenas
# (libuv's and V8's threads otherwise each grow their own); a small young generation keeps RSS down under load.
ENV NODE_ENV=production \
    SIGNET_CONFIG=/etc/signet/signet.yaml \
    MALLOC_ARENA_MAX=2 \
    NODE_OPTIONS=--max-semi-space-size=4

WORKDIR /app
# The bundle, its source map and the license notices of what it bundles; no node_modules, no sources.
COPY --from=build \
     /app/dist/signet.mjs /app/dist/signet.mjs.map /app/dist/healthcheck.mjs /app/dist/THIRD-PARTY-LICENSES.txt \
     /app/dist/externaljwt.proto \
     ./dist/
COPY vault-policy.hcl ./
# A working default (token auth from VAULT_TOKEN); mount your own over it, e.g. a Kubernetes ConfigMap.
COPY deploy/signet.example.yaml /etc/signet/signet.yaml

# The node image's unprivileged user, by number so that Kubernetes can check runAsNonRoot.
USER 1000:1000

EXPOSE 8250 8251
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "dist/healthcheck.mjs", "/healthz"]

CMD ["node", "dist/signet.mjs", "serve", "--config", "/etc/signet/signet.yaml"]
