import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keyIdOf, Vault, VaultError } from '../jobs/custody/vault.ts';

const KEY_A = 'a'.repeat(16) + 'B'.repeat(16); // 32 characters: the seed's key format
const KEY_B = randomBytes(32).toString('hex'); // 64 hex digits
const KEY_C = randomBytes(32).toString('base64'); // base64
const SECRET = 'abandon ability able about above absent absorb abstract absurd abuse access accident';

/** Exactly what the seed did: AES-256-CBC, key = the UTF-8 bytes of the 32-character key, hex `iv:ciphertext`. */
function seedEncrypt(plaintext: string, key: string): string {
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-cbc', Buffer.from(key, 'utf8'), iv);
  let encrypted = cipher.update(plaintext, 'utf8', 'hex');
  encrypted += cipher.final('hex');
  return `${iv.toString('hex')}:${encrypted}`;
}

/** Flips one bit of byte `at` of base64url field `field` of a v2 value. */
function flip(stored: string, field: 2 | 3 | 4, at = 0): string {
  const parts = stored.split(':');
  const bytes = Buffer.from(parts[field]!, 'base64url');
  bytes[at]! ^= 0x01;
  parts[field] = bytes.toString('base64url');
  return parts.join(':');
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

const vaultOf = (current: string, old: string[] = []) => Vault.fromConfig({ ENCRYPTION_KEY: current, ENCRYPTION_KEYS_OLD: old });

describe('Vault', () => {
  it('round-trips text under each key format', () => {
    for (const key of [KEY_A, KEY_B, KEY_C]) {
      const vault = vaultOf(key);
      const stored = vault.encrypt(SECRET);
      expect(stored).toMatch(new RegExp(`^v2:${vault.currentKeyId}:[\\w-]+:[\\w-]+:[\\w-]+$`));
      expect(stored).not.toContain('abandon');
      expect(vault.decrypt(stored)).toBe(SECRET);
      expect(vault.needsReencryption(stored)).toBe(false);
    }
    expect(vaultOf(KEY_A).decrypt(vaultOf(KEY_A).encrypt(''))).toBe('');
    expect(vaultOf(KEY_A).decrypt(vaultOf(KEY_A).encrypt('ключ 🔑'))).toBe('ключ 🔑');
  });

  it('uses a fresh IV each time, so equal plaintexts give different values', () => {
    const vault = vaultOf(KEY_A);
    const [one, two] = [vault.encrypt(SECRET), vault.encrypt(SECRET)];
    expect(one).not.toBe(two);
    expect(one.split(':')[2]).not.toBe(two.split(':')[2]);
  });

  it('names the key by a stable id derived from it', () => {
    expect(vaultOf(KEY_A).currentKeyId).toBe(keyIdOf(Buffer.from(KEY_A, 'utf8')));
    expect(vaultOf(KEY_A).currentKeyId).toBe(vaultOf(KEY_A).currentKeyId);
    expect(vaultOf(KEY_A).currentKeyId).not.toBe(vaultOf(KEY_B).currentKeyId);
  });

  it("decrypts the seed's legacy AES-256-CBC values under the current or an old key, and flags them", () => {
    const legacyCurrent = seedEncrypt(SECRET, KEY_A);
    const vault = vaultOf(KEY_A);
    expect(vault.decrypt(legacyCurrent)).toBe(SECRET);
    expect(vault.needsReencryption(legacyCurrent)).toBe(true);

    const legacyOld = seedEncrypt('0xprivate', KEY_A);
    const rotated = vaultOf(KEY_B, [KEY_A]);
    expect(rotated.decrypt(legacyOld)).toBe('0xprivate');
    expect(rotated.needsReencryption(legacyOld)).toBe(true);
  });

  it('refuses a legacy value under none of the keys without revealing it', () => {
    const err = thrown(() => vaultOf(KEY_B).decrypt(seedEncrypt(SECRET, KEY_A)));
    expect(err).toBeInstanceOf(VaultError);
    expect(err.message).toMatch(/none of the configured keys/);
  });

  it('decrypts under a key moved to ENCRYPTION_KEYS_OLD and flags the value for re-encryption', () => {
    const before = vaultOf(KEY_A).encrypt(SECRET);
    const after = vaultOf(KEY_B, [KEY_A]);
    expect(after.decrypt(before)).toBe(SECRET);
    expect(after.needsReencryption(before)).toBe(true);
    const reencrypted = after.encrypt(after.decrypt(before));
    expect(after.needsReencryption(reencrypted)).toBe(false);
    expect(reencrypted.split(':')[1]).toBe(after.currentKeyId);
  });

  it('refuses a value under a key it does not have, naming only the key id', () => {
    const stored = vaultOf(KEY_A).encrypt(SECRET);
    const err = thrown(() => vaultOf(KEY_B).decrypt(stored));
    expect(err).toBeInstanceOf(VaultError);
    expect(err.message).toContain(keyIdOf(Buffer.from(KEY_A, 'utf8')));
    expect(err.message).toMatch(/neither ENCRYPTION_KEY nor in ENCRYPTION_KEYS_OLD/);
  });

  it('fails loudly when one bit of the IV, tag or ciphertext changes', () => {
    const vault = vaultOf(KEY_A);
    const stored = vault.encrypt(SECRET);
    for (const field of [2, 3, 4] as const) {
      for (const at of [0, 5]) {
        const err = thrown(() => vault.decrypt(flip(stored, field, at)));
        expect(err).toBeInstanceOf(VaultError);
        expect(err.message).toMatch(/failed authentication/);
      }
    }
  });

  it('fails when a value is relabelled with another key id it holds', () => {
    const vault = vaultOf(KEY_A, [KEY_B]);
    const stored = vault.encrypt(SECRET);
    const relabelled = stored.replace(vault.currentKeyId, keyIdOf(Buffer.from(KEY_B, 'hex')));
    expect(() => vault.decrypt(relabelled)).toThrow(/failed authentication/);
  });

  it('refuses malformed input with a message that quotes none of it', () => {
    const vault = vaultOf(KEY_A);
    const stored = vault.encrypt(SECRET);
    const malformed = [SECRET, '', 'v2:', `v1${stored.slice(2)}`, stored.slice(0, -3) + '!!!', 'v2:abcd:x:y:z', 'zz:00', `${'0'.repeat(32)}:abc`];
    for (const value of malformed) {
      const err = thrown(() => vault.decrypt(value));
      expect(err).toBeInstanceOf(VaultError);
      if (value.length > 8) expect(err.message).not.toContain(value); // shorter ones are format words like 'v2:'
    }
    expect(() => vault.needsReencryption(SECRET)).toThrow(VaultError);
    const shortIv = stored.split(':');
    shortIv[2] = 'AAAA';
    expect(() => vault.decrypt(shortIv.join(':'))).toThrow(/bad IV or tag length/);
  });

  it('never puts the plaintext or a key into an error', () => {
    const vault = vaultOf(KEY_A, [KEY_C]);
    const failures = [
      thrown(() => vault.decrypt(flip(vault.encrypt(SECRET), 4))),
      thrown(() => vaultOf(KEY_B).decrypt(vault.encrypt(SECRET))),
      thrown(() => vault.decrypt(SECRET)),
      thrown(() => vaultOf(KEY_B).decrypt(seedEncrypt(SECRET, KEY_A))),
      thrown(() => vaultOf('too short')),
      thrown(() => vaultOf(KEY_A, ['x'.repeat(31)])),
    ];
    for (const err of failures) {
      const text = `${err.message}\n${err.stack}`;
      for (const secret of [SECRET, 'abandon', KEY_A, KEY_B, KEY_C, 'too short', 'x'.repeat(31)]) expect(text).not.toContain(secret);
    }
  });
});
