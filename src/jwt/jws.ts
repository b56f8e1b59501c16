// Compact JWS assembly around an external signer (Vault). jose has no external-signer API, so Signet builds
// `header.payload`, has Vault sign its bytes, and appends the signature (Vault's wire formats for both are in
// src/vault/wire.ts). No I/O.

export function base64url(data: string | Uint8Array): string {
  return typeof data === 'string' ? encodeText(data, 'base64url') : Buffer.from(data).toString('base64url');
}

// One scratch buffer for encodeText: it runs synchronously, one call at a time, and a new Buffer per call (two per
// token: its payload and Vault's input) was a measurable part of each token's CPU.
const scratch = Buffer.allocUnsafe(16 * 1024);

/**
 * base64url (or standard base64) of a string's bytes: UTF-8, or latin1 for text known to be ASCII (a JWS signing
 * input), which is then copied as it is.
 */
export function encodeText(text: string, to: 'base64url' | 'base64', from: 'utf8' | 'latin1' = 'utf8'): string {
  // UTF-8 takes at most 3 bytes per UTF-16 code unit; longer text gets a Buffer of its own.
  if (text.length * 3 > scratch.length) return Buffer.from(text, from).toString(to);
  return scratch.toString(to, 0, scratch.write(text, 0, from));
}

/** The protected header Signet puts on every token. `typ` defaults to JWT; a caller may choose another. */
export function encodeHeader(alg: string, kid: string, typ = 'JWT'): string {
  // Fixed member order so the same (alg, kid, typ) always yields the same bytes (cacheable per kid).
  return base64url(JSON.stringify({ alg, kid, typ }));
}

export function encodePayload(claims: Readonly<Record<string, unknown>>): string {
  return base64url(JSON.stringify(claims));
}
