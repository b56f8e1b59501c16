#!/usr/bin/env bash
# Prints the path of a kube-apiserver binary on stdout (for the Kubernetes integration tests); progress on stderr.
#
# Order: $KUBE_APISERVER_BIN, then a cached build, else build it from the Go module proxy and cache it
# (3-5 min on 2 cores). Why a wrapper module: k8s.io/kubernetes is not meant to be required (its go.mod
# replaces every k8s.io/* staging module with a local ./staging directory, and requires them at v0.0.0).
# The wrapper's main is kube-apiserver's own, requires k8s.io/kubernetes, and replaces each module of
# that staging block with its published twin (k8s.io/X v0.<minor>.<patch> for kubernetes v1.<minor>.<patch>),
# read from the go.mod of the release itself.
set -euo pipefail
NAME=kube-apiserver
VERSION="${SIGNET_KUBE_VERSION:-v1.37.2}"
OVERRIDE_VAR=KUBE_APISERVER_BIN
LDFLAGS="-X k8s.io/component-base/version.gitVersion=$VERSION -X k8s.io/component-base/version.gitMajor=1 \
-X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$VERSION") \
-X k8s.io/component-base/version.gitTreeState=clean"
# shellcheck source=scripts/go-bin-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-bin-lib.sh"

write_wrapper() {
  local staging="v0.${VERSION#v1.}"
  log "reading the staging replace block of k8s.io/kubernetes@$VERSION (go mod download)…"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  if [[ ! -f "$gomod" ]]; then log "go mod download did not name the go.mod of k8s.io/kubernetes@$VERSION"; return 1; fi
  local modules
  modules="$(sed -n 's#^[[:space:]]*\(replace[[:space:]]\{1,\}\)\{0,1\}\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\2#p' "$gomod")"
  if [[ -z "$modules" ]]; then log "no ./staging replace directives in $gomod"; return 1; fi
  cat > main.go <<'GO'
// Wrapper whose only job is to build kube-apiserver's own command (a copy of cmd/kube-apiserver/apiserver.go).
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	command := app.NewAPIServerCommand()
	code := cli.Run(command)
	os.Exit(code)
}
GO
  {
    printf 'module signet.local/kubeapiserverbuild\n\ngo 1.25\n\nrequire k8s.io/kubernetes %s\n\n' "$VERSION"
    printf '// The staging block of k8s.io/kubernetes@%s, pointed at the published modules.\n' "$VERSION"
    local m
    for m in $modules; do printf 'replace %s => %s %s\n' "$m" "$m" "$staging"; done
  } > go.mod
}

go_bin_main
