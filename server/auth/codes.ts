// Email verification codes: six random digits, stored only as a keyed hash. A plain hash of a
// 6-digit code falls to a million guesses offline, so the hash is an HMAC under a key derived from
// ENCRYPTION_KEY (which never sits in the database), bound to the user id.
import { createHmac, hkdfSync, randomInt, timingSafeEqual } from 'node:crypto';
import { parseEncryptionKey } from '../../jobs/config.ts';
import type { RuntimeConfig } from '../../jobs/secrets.ts';

export const CODE_TTL_MS = 15 * 60 * 1000;
/** Wrong guesses a code survives; the next attempt is refused even with the right code. */
export const MAX_ATTEMPTS = 5;

export function generateCode(): string {
  return randomInt(0, 1_000_000).toString().padStart(6, '0');
}

const keys = new WeakMap<RuntimeConfig, Buffer>();

function codeKey(config: RuntimeConfig): Buffer {
  let key = keys.get(config);
  if (!key) {
    const master = parseEncryptionKey(config.ENCRYPTION_KEY);
    if (!master) throw new Error('ENCRYPTION_KEY is not a valid key'); // the config schema prevents this
    key = Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), 'verification-code', 32));
    keys.set(config, key);
  }
  return key;
}

export function hashCode(config: RuntimeConfig, userId: string, code: string): string {
  return createHmac('sha256', codeKey(config)).update(`${userId}:${code}`).digest('hex');
}

/** Constant-time: the comparison takes as long whichever digit is wrong. */
export function codeMatches(config: RuntimeConfig, userId: string, code: string, storedHash: string): boolean {
  const given = Buffer.from(hashCode(config, userId, code), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  return given.length === stored.length && timingSafeEqual(given, stored);
}
