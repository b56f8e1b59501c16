// Strict parsing of a compact JWS presented for verification, before any key is touched. Every refusal says
// what is wrong with the token (never its content). No I/O.

import { TokenInvalidError } from '../errors.ts';

export const MAX_TOKEN_LENGTH = 8192;
const SEGMENT = /^[A-Za-z0-9_-]+$/;
/** Headers that point at keys the token chooses itself: never honoured (key confusion, SSRF). */
const FORBIDDEN_HEADERS = ['jku', 'x5u', 'jwk', 'x5c'];

export interface ParsedToken {
  header: Record<string, unknown> & { alg: string; kid?: string };
  /** `header.payload`, the bytes that were signed. */
  signingInput: string;
  payloadSegment: string;
  /** The signature segment as it appears in the token. */
  signature: string;
  /** Its bytes, decoded once. */
  signatureBytes: Buffer;
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Whether an unpadded base64url segment (already known to use only the alphabet) is the one canonical spelling
 * of its bytes: a length of 1 mod 4 encodes nothing, and the bits the last character carries beyond the data
 * must be zero. Decoders ignore those bits, so without this one token would have several spellings.
 */
export function isCanonicalBase64url(segment: string): boolean {
  const rest = segment.length % 4;
  if (rest === 1) return false;
  if (rest === 0) return true;
  const last = ALPHABET.indexOf(segment[segment.length - 1]!);
  return rest === 2 ? (last & 0x0f) === 0 : (last & 0x03) === 0;
}

/** Invalid UTF-8 is refused, not replaced with U+FFFD (which would let different bytes read as the same claims). */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeJson(segment: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(UTF8.decode(Buffer.from(segment, 'base64url')));
  } catch {
    throw new TokenInvalidError(`${what} is not base64url-encoded JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TokenInvalidError(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

export function parseToken(token: string): ParsedToken {
  if (token.length > MAX_TOKEN_LENGTH) throw new TokenInvalidError(`token is longer than ${MAX_TOKEN_LENGTH} characters`);
  const parts = token.split('.');
  if (parts.length === 5) throw new TokenInvalidError('token is a JWE; only signed JWTs (JWS) are accepted');
  if (parts.length !== 3) throw new TokenInvalidError('token is not a compact JWS (header.payload.signature)');
  const [headerSegment, payloadSegment, signature] = parts as [string, string, string];
  if (!SEGMENT.test(headerSegment) || !SEGMENT.test(payloadSegment) || !SEGMENT.test(signature)) {
    throw new TokenInvalidError('token segments must be non-empty unpadded base64url');
  }
  // Canonical encoding only: decoders ignore the spare low bits of the last character, so without this check one
  // token would have several spellings (a signature segment altered in its last character would still verify).
  for (const [segment, what] of [[headerSegment, 'header'], [payloadSegment, 'payload'], [signature, 'signature']] as const) {
    if (!isCanonicalBase64url(segment)) {
      throw new TokenInvalidError(`${what}: not canonical base64url (stray bits or length in its last characters)`);
    }
  }
  const header = decodeJson(headerSegment, 'header');
  if (typeof header.alg !== 'string') throw new TokenInvalidError('header alg: missing');
  if (header.alg === 'none') throw new TokenInvalidError('header alg: "none" is never accepted');
  for (const name of FORBIDDEN_HEADERS) {
    if (Object.hasOwn(header, name)) throw new TokenInvalidError(`header ${name}: not accepted (keys come only from Signet's key set)`);
  }
  if (Object.hasOwn(header, 'crit')) throw new TokenInvalidError('header crit: no critical extensions are supported');
  if (Object.hasOwn(header, 'b64')) throw new TokenInvalidError('header b64: unencoded payloads are not accepted');
  if (typeof header.cty === 'string' && header.cty.toUpperCase() === 'JWT') throw new TokenInvalidError('header cty: nested JWTs are not accepted');
  // A token without a kid is refused by the verifier unless a key takes such tokens (accept_missing_kid).
  if (Object.hasOwn(header, 'kid') && (typeof header.kid !== 'string' || header.kid.length === 0)) throw new TokenInvalidError('header kid: missing');
  return {
    header: header as ParsedToken['header'],
    signingInput: `${headerSegment}.${payloadSegment}`,
    payloadSegment,
    signature,
    signatureBytes: Buffer.from(signature, 'base64url'),
  };
}

export function decodePayload(segment: string): Record<string, unknown> {
  return decodeJson(segment, 'payload');
}
