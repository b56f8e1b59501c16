#!/usr/bin/env bash
# Prints the path of an etcd binary on stdout (for the Kubernetes integration tests); progress on stderr.
#
# Order: $ETCD_BIN, then a cached build, else build etcd from the Go module proxy and cache it
# (~30 s on 2 cores with warm Go caches). The wrapper's main is etcd's own: etcdmain.Main(os.Args).
set -euo pipefail
NAME=etcd
VERSION="${SIGNET_ETCD_VERSION:-v3.7.3}"
OVERRIDE_VAR=ETCD_BIN
LDFLAGS=""
# shellcheck source=scripts/go-bin-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-bin-lib.sh"

write_wrapper() {
  cat > main.go <<'GO'
// Wrapper whose only job is to build etcd's own server from the published module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
GO
  cat > go.mod <<MOD
module signet.local/etcdbuild

go 1.25

require go.etcd.io/etcd/server/v3 $VERSION
MOD
}

go_bin_main
