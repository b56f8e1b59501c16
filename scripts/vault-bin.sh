#!/usr/bin/env bash
# Prints the path of a Vault (or OpenBao) binary on stdout; progress goes to stderr.
#
# Order: $VAULT_BIN, then `vault` or `bao` on PATH (a user's own binary always wins), then a
# cached build, else build HashiCorp Vault from the Go module proxy and cache it.
#
# Why a wrapper module: `go install github.com/hashicorp/vault@vX` is refused because Vault's go.mod
# has replace directives. Our wrapper's main calls Vault's own command.Run; the non-local replaces
# of Vault's go.mod are copied in, and its local ones (./api, ./sdk) resolve to the published modules
# that its go.mod already requires. That only compiles when the published sdk module Vault's go.mod names
# is the code Vault's own ./sdk held at the release: v1.21.0 requires sdk v0.20.0 and builds; v1.21.1-v1.21.4
# were cut from a release branch whose ./sdk moved past any published sdk tag (they fail to compile against
# v0.20.0 and v0.21.0 alike), and newer sources need modules that exist only behind local replaces.
set -euo pipefail

VAULT_VERSION="${SIGNET_VAULT_VERSION:-v1.21.0}"
CACHE_DIR="${SIGNET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/signet}"
CACHED="$CACHE_DIR/vault-$VAULT_VERSION/vault"

log() { printf '[vault-bin] %s\n' "$*" >&2; }

if [[ -n "${VAULT_BIN:-}" ]]; then
  if [[ -x "$VAULT_BIN" ]]; then echo "$VAULT_BIN"; exit 0; fi
  log "VAULT_BIN=$VAULT_BIN is not an executable file; unset it or point it at a vault or bao binary"
  exit 1
fi
for candidate in vault bao; do
  if path="$(command -v "$candidate" 2>/dev/null)"; then echo "$path"; exit 0; fi
done
if [[ -x "$CACHED" ]]; then echo "$CACHED"; exit 0; fi

if ! command -v go >/dev/null 2>&1; then
  log "no Vault binary found (VAULT_BIN, vault or bao on PATH, $CACHED) and no Go toolchain to build one."
  log "Install Go (https://go.dev/dl) or a Vault/OpenBao binary, or set VAULT_BIN."
  exit 1
fi

mkdir -p "$CACHE_DIR"
# One build at a time: concurrent test workers or a second terminal wait for the first build.
exec 9>"$CACHE_DIR/build.lock"
log "waiting for the build lock $CACHE_DIR/build.lock"
flock 9
if [[ -x "$CACHED" ]]; then echo "$CACHED"; exit 0; fi

WORK="$(mktemp -d "$CACHE_DIR/build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
log "building HashiCorp Vault $VAULT_VERSION from the Go module proxy with $(go version | cut -d' ' -f3)"
log "this happens once and takes several minutes (7 min on 2 cores with empty Go caches); the binary is cached at $CACHED"

cd "$WORK"
cat > main.go <<'GO'
// Wrapper whose only job is to build Vault's own CLI from the published module.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
GO

cat > go.mod <<MOD
module signet.local/vaultbuild

go 1.25.3

require github.com/hashicorp/vault $VAULT_VERSION

// Copied from Vault's own go.mod (its non-local replace directives).
replace github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3

replace github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1
MOD

export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
log "resolving modules (go mod tidy)…"
go mod tidy >&2
log "compiling (go build)…"
start=$SECONDS
go build -trimpath -ldflags "-s -w" -o vault-out . >&2
mkdir -p "$(dirname "$CACHED")"
mv vault-out "$CACHED.tmp"
mv "$CACHED.tmp" "$CACHED"
log "built in $((SECONDS - start))s: $("$CACHED" version)"
echo "$CACHED"
