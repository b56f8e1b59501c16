# Vault policy for the people and jobs that manage Signet's Transit keys: create or import keys, rotate them, change
# their configuration (auto_rotate_period, min_encryption_version, min_decryption_version) and read their state.
# `signet keys create|import|rotate|retire|status` and `vault write transit/keys/NAME/rotate` run with it.
#
# Never granted: export (transit/export), backups (transit/backup, transit/restore), deleting or trimming a key,
# and signing or HMAC with a key (operators manage keys; only Signet signs). The deny rules make that hold even
# when another policy attached to the same token grants more, since deny wins over every other capability.
#
# It covers every key on the `transit` mount; narrow `+` to your key names (or a prefix such as "jwt-*") when the
# mount holds keys that are not Signet's. Replace `transit/` with your mount when vault.mount is not "transit".
#
# Note: `signet keys status` and `signet keys rotate` read key state as Signet does, which for HMAC keys includes
# an HMAC fingerprint (transit/hmac/NAME/sha2-256). That would let the holder forge HS tokens, so this policy does
# not grant it: for HMAC keys, rotate with `vault write -f transit/keys/NAME/rotate` and read with `vault read`.

# List the keys on the mount.
path "transit/keys" {
  capabilities = ["list"]
}

# Create a key and read its state (versions, public keys, min_*_version, auto_rotate_period).
path "transit/keys/+" {
  capabilities = ["create", "read", "update"]
}

# Rotate: a new version, published by Signet now and signing after publish_delay.
path "transit/keys/+/rotate" {
  capabilities = ["update"]
}

# auto_rotate_period, min_encryption_version (force a switch), min_decryption_version (retire versions).
path "transit/keys/+/config" {
  capabilities = ["update", "read"]
}

# Import an existing private key or HMAC secret (signet keys import): read Vault's wrapping key (a public RSA key
# the key travels wrapped under), then create the key through the import endpoint, which never replaces a key.
# import_version (new material for an existing key) is not granted: Signet's keys rotate inside Vault.
path "transit/wrapping_key" {
  capabilities = ["read"]
}

path "transit/keys/+/import" {
  capabilities = ["update"]
}

# Operator tokens look themselves up (the signet CLI does so before it acts).
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# The private key never leaves Vault: no export, no backup, no restore, no trim, no signing.
path "transit/export/*" {
  capabilities = ["deny"]
}

path "transit/backup/*" {
  capabilities = ["deny"]
}

path "transit/restore" {
  capabilities = ["deny"]
}

path "transit/restore/*" {
  capabilities = ["deny"]
}

path "transit/keys/+/trim" {
  capabilities = ["deny"]
}

path "transit/sign/*" {
  capabilities = ["deny"]
}

path "transit/hmac/*" {
  capabilities = ["deny"]
}
