# Vault policy for Signet as a cluster's service-account token signer (signet.yaml in this directory: Transit
# key k8s-prod, type ecdsa-p256, ES256, mount transit). Exactly what Signet calls, nothing else: reading the key
# state and signing with it. Not granted: rotate, config, export, backup, delete (operators do those with
# deploy/vault/operator-policy.hcl), or any other key. For RS256 on an rsa-* key the sign path is the same
# (sha2-256); for ES384 (ecdsa-p384) use sha2-384, for ES512 (ecdsa-p521) sha2-512.

path "transit/keys/k8s-prod" {
  capabilities = ["read"]
}

path "transit/sign/k8s-prod/sha2-256" {
  capabilities = ["update"]
}

path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}
