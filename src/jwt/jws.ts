// Compact JWS assembly around an external signer (Vault). jose has no external-signer API, so Signet builds
// `header.payload`, has Vault sign its bytes, and appends the signature (Vault's wire formats for both are in
// src/vault/wire.ts). No I/O.

export function base64url(data: string | Uint8Array): string {
  return Buffer.from(data).toString('base64url');
}

/** The protected header Signet puts on every token. `typ` defaults to JWT; a caller may choose another. */
export function encodeHeader(alg: string, kid: string, typ = 'JWT'): string {
  // Fixed member order so the same (alg, kid, typ) always yields the same bytes (cacheable per kid).
  return base64url(JSON.stringify({ alg, kid, typ }));
}

export function encodePayload(claims: Readonly<Record<string, unknown>>): string {
  return base64url(JSON.stringify(claims));
}
