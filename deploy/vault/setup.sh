#!/usr/bin/env bash
# Sets a Vault (or OpenBao) up for Signet, idempotently; run it again after changing the settings below.
#
#   1. enables the Transit secrets engine (TRANSIT_MOUNT);
#   2. creates Signet's keys, never exportable and without plaintext backup, with auto_rotate_period
#      (an existing key keeps its material; its auto_rotate_period is updated; an exportable one stops the script);
#   3. writes the policy Signet needs for exactly those keys (SIGNET_POLICY; vault-policy.hcl at the project root is
#      what it writes for the default keys) and the operator policy (OPERATOR_POLICY, deploy/vault/operator-policy.hcl);
#   4. enables AppRole and configures a role for Signet and one for operators (rotation jobs, CI);
#   5. enables Kubernetes auth and configures a role for Signet, bound to the example app's service account and to
#      the audience of the projected token in deploy/kubernetes/ (audience "vault").
#
# Needs: the vault CLI (VAULT_BIN, else `vault` on PATH; `bao` works the same for OpenBao), VAULT_ADDR and a
# token that may do all of the above (VAULT_TOKEN, or the CLI's token helper). Nothing else: no jq, no curl.
#
# Usage: VAULT_ADDR=https://vault.example:8200 VAULT_TOKEN=... deploy/vault/setup.sh
#
# Settings (environment; defaults in brackets):
#   SIGNET_KEYS            space-separated NAME:TYPE[:ALG] ["app:ecdsa-p256:ES256 app-hmac:hmac:HS256"]
#                          TYPE: ed25519 ecdsa-p256 ecdsa-p384 ecdsa-p521 rsa-2048 rsa-3072 rsa-4096 hmac
#   AUTO_ROTATE_PERIOD     Vault's auto_rotate_period for those keys [720h]; 0 turns auto-rotation off.
#                          Keep deploy/prometheus/signet-rules.yml's key-age threshold in step with it.
#   TRANSIT_MOUNT          [transit]
#   SIGNET_POLICY          [signet]             OPERATOR_POLICY      [signet-operator]
#   TOKEN_TTL              [1h]                 TOKEN_MAX_TTL        [24h]     (Signet's tokens; it renews them)
#   APPROLE_MOUNT          [approle]            APPROLE_ROLE         [signet]  OPERATOR_APPROLE_ROLE [signet-operator]
#   SECRET_ID_TTL          [0: Signet's secret ids do not expire; bind them with APPROLE_BOUND_CIDRS instead]
#   APPROLE_BOUND_CIDRS    [none]               comma-separated CIDRs Signet's secret ids and tokens are bound to
#   K8S_MOUNT              [kubernetes]         K8S_ROLE             [signet]
#   K8S_HOST               [https://kubernetes.default.svc]
#   K8S_DISABLE_LOCAL_CA_JWT  [false: Vault runs in the cluster and uses its own pod's CA and service account token
#                          to review logins]; true when Vault runs outside the cluster, with:
#   K8S_CA_CERT_FILE       [none] the cluster's CA certificate (PEM)
#   K8S_TOKEN_REVIEWER_JWT_FILE  [none: each login's own token reviews itself, which needs the
#                          system:auth-delegator ClusterRole for the app's service account]
#   K8S_NAMESPACE          [signet-example]     K8S_SERVICE_ACCOUNT  [example-app]   K8S_AUDIENCE [vault]
#   SETUP_PRINT_POLICY=1   only print the Signet policy for SIGNET_KEYS, change nothing

set -euo pipefail

VAULT_BIN=${VAULT_BIN:-vault}
SIGNET_KEYS=${SIGNET_KEYS:-"app:ecdsa-p256:ES256 app-hmac:hmac:HS256"}
AUTO_ROTATE_PERIOD=${AUTO_ROTATE_PERIOD:-720h}
TRANSIT_MOUNT=${TRANSIT_MOUNT:-transit}
SIGNET_POLICY=${SIGNET_POLICY:-signet}
OPERATOR_POLICY=${OPERATOR_POLICY:-signet-operator}
TOKEN_TTL=${TOKEN_TTL:-1h}
TOKEN_MAX_TTL=${TOKEN_MAX_TTL:-24h}
APPROLE_MOUNT=${APPROLE_MOUNT:-approle}
APPROLE_ROLE=${APPROLE_ROLE:-signet}
OPERATOR_APPROLE_ROLE=${OPERATOR_APPROLE_ROLE:-signet-operator}
SECRET_ID_TTL=${SECRET_ID_TTL:-0}
APPROLE_BOUND_CIDRS=${APPROLE_BOUND_CIDRS:-}
K8S_MOUNT=${K8S_MOUNT:-kubernetes}
K8S_ROLE=${K8S_ROLE:-signet}
K8S_HOST=${K8S_HOST:-https://kubernetes.default.svc}
K8S_DISABLE_LOCAL_CA_JWT=${K8S_DISABLE_LOCAL_CA_JWT:-false}
K8S_CA_CERT_FILE=${K8S_CA_CERT_FILE:-}
K8S_TOKEN_REVIEWER_JWT_FILE=${K8S_TOKEN_REVIEWER_JWT_FILE:-}
K8S_NAMESPACE=${K8S_NAMESPACE:-signet-example}
K8S_SERVICE_ACCOUNT=${K8S_SERVICE_ACCOUNT:-example-app}
K8S_AUDIENCE=${K8S_AUDIENCE:-vault}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# The hash segment of the Transit path for a JWS alg (empty for Ed25519, which hashes internally).
hash_of() {
  case "$1" in
    EdDSA|Ed25519) echo '' ;;
    *256) echo sha2-256 ;;
    *384) echo sha2-384 ;;
    *512) echo sha2-512 ;;
    *) die "unknown JWS alg $1" ;;
  esac
}

# The alg Signet uses for a key type when the configuration names none (src/jwt/algorithms.ts), or the given one.
alg_of() {
  local type=$1 alg=${2:-}
  case "$type" in
    ed25519) [[ -z $alg || $alg == EdDSA || $alg == Ed25519 ]] || die "$alg does not fit $type"; echo "${alg:-EdDSA}" ;;
    ecdsa-p256) [[ -z $alg || $alg == ES256 ]] || die "$alg does not fit $type"; echo ES256 ;;
    ecdsa-p384) [[ -z $alg || $alg == ES384 ]] || die "$alg does not fit $type"; echo ES384 ;;
    ecdsa-p521) [[ -z $alg || $alg == ES512 ]] || die "$alg does not fit $type"; echo ES512 ;;
    rsa-2048|rsa-3072|rsa-4096) [[ -z $alg || $alg =~ ^[RP]S(256|384|512)$ ]] || die "$alg does not fit $type"; echo "${alg:-RS256}" ;;
    hmac) [[ -z $alg || $alg =~ ^HS(256|384|512)$ ]] || die "$alg does not fit $type"; echo "${alg:-HS256}" ;;
    *) die "key type $type cannot sign JWTs (ed25519, ecdsa-p256|p384|p521, rsa-2048|3072|4096, hmac)" ;;
  esac
}

rule() { printf 'path "%s" {\n  capabilities = ["%s"]\n}\n\n' "$1" "$2"; }

# The least-privilege policy for SIGNET_KEYS: the same rules as vault-policy.hcl, for these names and this mount.
signet_policy() {
  local spec name type alg hash
  printf '# Signet: written by deploy/vault/setup.sh for keys: %s\n\n' "$SIGNET_KEYS"
  for spec in $SIGNET_KEYS; do
    IFS=: read -r name type alg <<<"$spec"
    [[ -n $name && -n $type ]] || die "SIGNET_KEYS entry \"$spec\" must be NAME:TYPE[:ALG]"
    [[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "key name \"$name\" must be letters, digits, _ . -"
    alg=$(alg_of "$type" "$alg")
    hash=$(hash_of "$alg")
    rule "$TRANSIT_MOUNT/keys/$name" read
    if [[ $type == hmac ]]; then
      rule "$TRANSIT_MOUNT/hmac/$name/$hash" update
      rule "$TRANSIT_MOUNT/verify/$name/$hash" update
      # Signet fingerprints each HMAC key version with HMAC-SHA-256 when it loads the key.
      [[ $hash == sha2-256 ]] || rule "$TRANSIT_MOUNT/hmac/$name/sha2-256" update
    elif [[ -z $hash ]]; then
      rule "$TRANSIT_MOUNT/sign/$name" update
    else
      rule "$TRANSIT_MOUNT/sign/$name/$hash" update
    fi
  done
  rule auth/token/lookup-self read
  rule auth/token/renew-self update
}

operator_policy() {
  if [[ $TRANSIT_MOUNT == transit ]]; then cat "$HERE/operator-policy.hcl"
  else sed "s#\"transit/#\"$TRANSIT_MOUNT/#; s#\"transit\"#\"$TRANSIT_MOUNT\"#" "$HERE/operator-policy.hcl"
  fi
}

if [[ ${SETUP_PRINT_POLICY:-} == 1 ]]; then
  signet_policy
  exit 0
fi

command -v "$VAULT_BIN" >/dev/null 2>&1 || die "no vault CLI: install it or set VAULT_BIN (OpenBao: VAULT_BIN=bao)"
[[ -n ${VAULT_ADDR:-} ]] || die "set VAULT_ADDR (and VAULT_TOKEN) to the Vault to set up"
export VAULT_FORMAT=table

v() { "$VAULT_BIN" "$@"; }

# True when `vault secrets list` / `vault auth list` has a mount at PATH/ (top-level keys of the JSON answer).
# (Read the whole answer first: with pipefail, `vault … | grep -q` fails when grep exits before vault has written
# everything, SIGPIPE, and the mount would look absent.)
has_mount() { local listing; listing=$(v "$1" list -format=json) && grep -q "^  \"$2/\": {" <<<"$listing"; }

# --- 1. Transit -------------------------------------------------------------------------------------------------
if has_mount secrets "$TRANSIT_MOUNT"; then
  type=$(v read -field=type "sys/mounts/$TRANSIT_MOUNT")
  [[ $type == transit ]] || die "$TRANSIT_MOUNT/ is mounted, but as $type, not transit"
  log "Transit is mounted at $TRANSIT_MOUNT/"
else
  v secrets enable -path="$TRANSIT_MOUNT" -description="Signet JWT signing keys" transit >/dev/null
  log "enabled Transit at $TRANSIT_MOUNT/"
fi

# --- 2. keys ----------------------------------------------------------------------------------------------------
for spec in $SIGNET_KEYS; do
  IFS=: read -r name type alg <<<"$spec"
  alg=$(alg_of "$type" "$alg")
  if exportable=$(v read -field=exportable "$TRANSIT_MOUNT/keys/$name" 2>/dev/null); then
    existing=$(v read -field=type "$TRANSIT_MOUNT/keys/$name")
    [[ $existing == "$type" ]] || die "key $name exists as $existing, not $type"
    [[ $exportable == false ]] || die "key $name is exportable: its private key may have left Vault; create a new key instead"
    v write "$TRANSIT_MOUNT/keys/$name/config" auto_rotate_period="$AUTO_ROTATE_PERIOD" allow_plaintext_backup=false >/dev/null
    log "key $name ($type) exists, not exportable; auto_rotate_period=$AUTO_ROTATE_PERIOD"
  else
    extra=()
    if [[ $type == hmac ]]; then
      # RFC 7518: an HS key is at least as long as the hash output.
      case "$alg" in HS384) extra=(key_size=48) ;; HS512) extra=(key_size=64) ;; *) extra=(key_size=32) ;; esac
    fi
    v write "$TRANSIT_MOUNT/keys/$name" type="$type" exportable=false allow_plaintext_backup=false \
      auto_rotate_period="$AUTO_ROTATE_PERIOD" "${extra[@]}" >/dev/null
    log "created key $name ($type, $alg), not exportable, auto_rotate_period=$AUTO_ROTATE_PERIOD"
  fi
done

# --- 3. policies ------------------------------------------------------------------------------------------------
signet_policy | v policy write "$SIGNET_POLICY" - >/dev/null
log "wrote policy $SIGNET_POLICY (Signet: sign/hmac/verify and read for these keys, token lookup-self/renew-self)"
operator_policy | v policy write "$OPERATOR_POLICY" - >/dev/null
log "wrote policy $OPERATOR_POLICY (create, rotate, config, read; never export or backup)"

# --- 4. AppRole -------------------------------------------------------------------------------------------------
if ! has_mount auth "$APPROLE_MOUNT"; then
  v auth enable -path="$APPROLE_MOUNT" approle >/dev/null
  log "enabled AppRole at auth/$APPROLE_MOUNT/"
fi
cidrs=()
[[ -z $APPROLE_BOUND_CIDRS ]] || cidrs=(secret_id_bound_cidrs="$APPROLE_BOUND_CIDRS" token_bound_cidrs="$APPROLE_BOUND_CIDRS")
v write "auth/$APPROLE_MOUNT/role/$APPROLE_ROLE" \
  token_policies="$SIGNET_POLICY" token_no_default_policy=true token_type=service \
  token_ttl="$TOKEN_TTL" token_max_ttl="$TOKEN_MAX_TTL" \
  bind_secret_id=true secret_id_ttl="$SECRET_ID_TTL" secret_id_num_uses=0 "${cidrs[@]}" >/dev/null
log "AppRole role $APPROLE_ROLE -> policy $SIGNET_POLICY"
# Operators' jobs get short-lived, single-use secret ids.
v write "auth/$APPROLE_MOUNT/role/$OPERATOR_APPROLE_ROLE" \
  token_policies="$OPERATOR_POLICY" token_no_default_policy=true token_type=service \
  token_ttl=15m token_max_ttl=1h bind_secret_id=true secret_id_ttl=1h secret_id_num_uses=1 >/dev/null
log "AppRole role $OPERATOR_APPROLE_ROLE -> policy $OPERATOR_POLICY"

# --- 5. Kubernetes ----------------------------------------------------------------------------------------------
if ! has_mount auth "$K8S_MOUNT"; then
  v auth enable -path="$K8S_MOUNT" kubernetes >/dev/null
  log "enabled Kubernetes auth at auth/$K8S_MOUNT/"
fi
k8s=(kubernetes_host="$K8S_HOST" disable_local_ca_jwt="$K8S_DISABLE_LOCAL_CA_JWT")
[[ -z $K8S_CA_CERT_FILE ]] || k8s+=(kubernetes_ca_cert=@"$K8S_CA_CERT_FILE")
[[ -z $K8S_TOKEN_REVIEWER_JWT_FILE ]] || k8s+=(token_reviewer_jwt=@"$K8S_TOKEN_REVIEWER_JWT_FILE")
v write "auth/$K8S_MOUNT/config" "${k8s[@]}" >/dev/null
log "Kubernetes auth: API server $K8S_HOST (disable_local_ca_jwt=$K8S_DISABLE_LOCAL_CA_JWT)"
v write "auth/$K8S_MOUNT/role/$K8S_ROLE" \
  bound_service_account_names="$K8S_SERVICE_ACCOUNT" bound_service_account_namespaces="$K8S_NAMESPACE" \
  audience="$K8S_AUDIENCE" token_policies="$SIGNET_POLICY" token_no_default_policy=true token_type=service \
  token_ttl="$TOKEN_TTL" token_max_ttl="$TOKEN_MAX_TTL" >/dev/null
log "Kubernetes role $K8S_ROLE -> policy $SIGNET_POLICY (service account $K8S_NAMESPACE/$K8S_SERVICE_ACCOUNT, audience $K8S_AUDIENCE)"

log "done. AppRole credentials for Signet:"
log "  role_id:   $VAULT_BIN read -field=role_id auth/$APPROLE_MOUNT/role/$APPROLE_ROLE/role-id"
log "  secret_id: $VAULT_BIN write -f -field=secret_id auth/$APPROLE_MOUNT/role/$APPROLE_ROLE/secret-id"
