# Vault policy for Signet: exactly what the sidecar calls, nothing else.
#
# Written for the example keys of deploy/signet.example.yaml, on the Transit mount `transit`:
#   app       Transit type ecdsa-p256, JWS alg ES256  -> transit/sign/app/sha2-256
#   app-hmac  Transit type hmac,       JWS alg HS256  -> transit/hmac/app-hmac/sha2-256, transit/verify/app-hmac/sha2-256
#
# Adapting it to your keys (deploy/vault/setup.sh writes this policy for the keys you give it in SIGNET_KEYS):
#   - every key:            path "transit/keys/NAME"                   { capabilities = ["read"] }
#   - Ed25519 (EdDSA):      path "transit/sign/NAME"                   { capabilities = ["update"] }   (no hash segment)
#   - ES*/RS*/PS* keys:     path "transit/sign/NAME/HASH"              { capabilities = ["update"] }
#   - HS* keys (hmac):      path "transit/hmac/NAME/HASH" and path "transit/verify/NAME/HASH" { capabilities = ["update"] }
#                           and, for HS384/HS512, also "transit/hmac/NAME/sha2-256": Signet fingerprints every HMAC
#                           key version with an HMAC-SHA-256 of a fixed input when it loads the key.
#   HASH is sha2-256 for *256, sha2-384 for *384, sha2-512 for *512 (ES256 on ecdsa-p256, ES384 on ecdsa-p384,
#   ES512 on ecdsa-p521). Replace `transit/` with your mount when vault.mount is not "transit".
#
# Not granted, on purpose: transit/keys/NAME/rotate and /config (operators: deploy/vault/operator-policy.hcl),
# transit/export, transit/backup, transit/restore, delete on transit/keys, any other key, and any other path.
# sys/health, which Signet also calls, needs no token. Kubernetes, AppRole and JWT logins need no policy either.
# Tokens that carry this policy should be created without the `default` policy (token_no_default_policy=true):
# the two token paths below are all Signet uses of it.

# Key state (versions, public keys, creation times, min_*_version, auto_rotate_period).
path "transit/keys/app" {
  capabilities = ["read"]
}

# Signing ES256 tokens with `app`.
path "transit/sign/app/sha2-256" {
  capabilities = ["update"]
}

# Key state of the HMAC key.
path "transit/keys/app-hmac" {
  capabilities = ["read"]
}

# HS256 tokens with `app-hmac` (and the key-version fingerprint Signet computes at load).
path "transit/hmac/app-hmac/sha2-256" {
  capabilities = ["update"]
}

# HS256 verification: the HMAC key never leaves Vault, so neither does the check.
path "transit/verify/app-hmac/sha2-256" {
  capabilities = ["update"]
}

# Signet looks its token up (TTL, renewable) and renews it before it expires.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}
