# Shared by etcd-bin.sh and kube-apiserver-bin.sh (sourced, not run): the cache, lock and progress
# conventions of vault-bin.sh for a binary built once from the Go module proxy through a wrapper module.
#
# A script sets NAME, VERSION, an optional <NAME>_BIN override variable name in OVERRIDE_VAR, and defines
# write_wrapper (writes main.go and go.mod into the current directory) and LDFLAGS; then calls go_bin_main.

CACHE_DIR="${SIGNET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/signet}"

log() { printf '[%s-bin] %s\n' "$NAME" "$*" >&2; }

go_bin_main() {
  local cached="$CACHE_DIR/$NAME-$VERSION/$NAME"
  local override="${!OVERRIDE_VAR:-}"
  if [[ -n "$override" ]]; then
    if [[ -x "$override" ]]; then echo "$override"; return 0; fi
    log "$OVERRIDE_VAR=$override is not an executable file; unset it or point it at a $NAME binary"
    return 1
  fi
  if [[ -x "$cached" ]]; then echo "$cached"; return 0; fi
  if ! command -v go >/dev/null 2>&1; then
    log "no $NAME binary found ($OVERRIDE_VAR, $cached) and no Go toolchain to build one."
    log "Install Go (https://go.dev/dl) or set $OVERRIDE_VAR."
    return 1
  fi

  mkdir -p "$CACHE_DIR"
  # One build of this binary at a time (its own lock: it need not wait for a Vault build).
  exec 9>"$CACHE_DIR/build-$NAME.lock"
  log "waiting for the build lock $CACHE_DIR/build-$NAME.lock"
  flock 9
  if [[ -x "$cached" ]]; then echo "$cached"; return 0; fi

  WORK="$(mktemp -d "$CACHE_DIR/build-$NAME.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  log "building $NAME $VERSION from the Go module proxy with $(go version | cut -d' ' -f3)"
  log "this happens once; the binary is cached at $cached"
  cd "$WORK"
  export GOFLAGS="-mod=mod -buildvcs=false"
  export CGO_ENABLED=0
  local start=$SECONDS
  write_wrapper
  log "resolving modules (go mod tidy)…"
  go mod tidy >&2
  log "compiling (go build)…"
  go build -trimpath -ldflags "-s -w $LDFLAGS" -o out . >&2
  mkdir -p "$(dirname "$cached")"
  mv out "$cached.tmp"
  mv "$cached.tmp" "$cached"
  log "built in $((SECONDS - start))s: $cached"
  echo "$cached"
}
