// Encryption at rest for secrets in the database (mnemonics, private keys, codes).
//
// Stored format: `v2:<keyId>:<iv>:<tag>:<ciphertext>`, AES-256-GCM, every field base64url (no
// padding) except keyId. keyId is the first 8 hex digits of sha256(key): it names the key that
// encrypted the value, so rotation knows what to decrypt with and what to re-encrypt, and it is
// far too short to say anything about the key itself. The `v2:<keyId>` prefix is authenticated
// as GCM additional data, so a value cannot be relabelled to another key without failing.
//
// The seed stored `iv:ciphertext` in hex, AES-256-CBC with the 32 UTF-8 bytes of ENCRYPTION_KEY as
// the key and no authentication. Those values still decrypt (under the current or any old key)
// and always report needsReencryption, so `npm run keys:reencrypt` moves them to v2. (The seed
// could only use a 32-character key, and for those parseEncryptionKey yields exactly its UTF-8 bytes.)
//
// Errors never carry the stored value, the plaintext or any key: only what went wrong.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { parseEncryptionKey } from '../config.ts';

const VERSION = 'v2';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const V2_PATTERN = /^v2:([0-9a-f]{8}):([A-Za-z0-9_-]+):([A-Za-z0-9_-]+):([A-Za-z0-9_-]*)$/;
const LEGACY_PATTERN = /^([0-9a-f]{32}):((?:[0-9a-f]{32})+)$/;

export class VaultError extends Error {
  constructor(message: string) {
    super(`Vault: ${message}`);
    this.name = 'VaultError';
  }
}

interface Key {
  id: string;
  bytes: Buffer;
}

export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

export class Vault {
  private readonly current: Key;
  /** Current first, then old keys in the order given; one entry per key id. */
  private readonly keys: Map<string, Key>;

  constructor(current: Buffer, old: Buffer[] = []) {
    this.keys = new Map();
    for (const bytes of [current, ...old]) {
      if (bytes.length !== 32) throw new VaultError('every key must be 32 bytes');
      const id = keyIdOf(bytes);
      const known = this.keys.get(id);
      if (known && !known.bytes.equals(bytes)) throw new VaultError(`two different keys share the id ${id}`);
      this.keys.set(id, { id, bytes });
    }
    this.current = { id: keyIdOf(current), bytes: current };
  }

  static fromConfig(config: { ENCRYPTION_KEY: string; ENCRYPTION_KEYS_OLD: string[] }): Vault {
    const parse = (value: string, name: string) => {
      const key = parseEncryptionKey(value);
      if (!key) throw new VaultError(`${name} is not a valid key (32 characters, or 32 bytes as hex or base64)`);
      return key;
    };
    return new Vault(
      parse(config.ENCRYPTION_KEY, 'ENCRYPTION_KEY'),
      config.ENCRYPTION_KEYS_OLD.map((value, i) => parse(value, `ENCRYPTION_KEYS_OLD[${i}]`)),
    );
  }

  /** The id of the key new values are encrypted with. */
  get currentKeyId(): string {
    return this.current.id;
  }

  encrypt(plaintext: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.current.bytes, iv);
    cipher.setAAD(Buffer.from(`${VERSION}:${this.current.id}`));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const fields = [iv, cipher.getAuthTag(), ciphertext].map((b) => b.toString('base64url'));
    return [VERSION, this.current.id, ...fields].join(':');
  }

  decrypt(stored: string): string {
    const v2 = V2_PATTERN.exec(stored);
    if (v2) return this.decryptV2(v2[1]!, v2[2]!, v2[3]!, v2[4]!);
    const legacy = LEGACY_PATTERN.exec(stored);
    if (legacy) return this.decryptLegacy(legacy[1]!, legacy[2]!);
    throw new VaultError('stored value is in no known format (expected v2:… or the legacy iv:ciphertext hex)');
  }

  /** True for legacy values and for values under an old key: `keys:reencrypt` should rewrite them. */
  needsReencryption(stored: string): boolean {
    const v2 = V2_PATTERN.exec(stored);
    if (v2) return v2[1] !== this.current.id;
    if (LEGACY_PATTERN.test(stored)) return true;
    throw new VaultError('stored value is in no known format (expected v2:… or the legacy iv:ciphertext hex)');
  }

  private decryptV2(keyId: string, iv64: string, tag64: string, ciphertext64: string): string {
    const key = this.keys.get(keyId);
    if (!key) throw new VaultError(`value is encrypted under key ${keyId}, which is neither ENCRYPTION_KEY nor in ENCRYPTION_KEYS_OLD`);
    const iv = Buffer.from(iv64, 'base64url');
    const tag = Buffer.from(tag64, 'base64url');
    if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new VaultError('malformed v2 value (bad IV or tag length)');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.bytes, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(`${VERSION}:${keyId}`));
      decipher.setAuthTag(tag);
      const plain = Buffer.concat([decipher.update(Buffer.from(ciphertext64, 'base64url')), decipher.final()]);
      return plain.toString('utf8');
    } catch {
      throw new VaultError(`value under key ${keyId} failed authentication: it was altered or corrupted`);
    }
  }

  /**
   * CBC has no authentication, so a wrong key is noticed only by bad padding or, rarely, by
   * garbage. Garbage is caught by requiring valid UTF-8 (the seed only stored text), and a value
   * that more than one configured key would accept is refused rather than guessed at.
   */
  private decryptLegacy(ivHex: string, ciphertextHex: string): string {
    const utf8 = new TextDecoder('utf-8', { fatal: true });
    const candidates: string[] = [];
    for (const key of this.keys.values()) {
      try {
        const decipher = createDecipheriv('aes-256-cbc', key.bytes, Buffer.from(ivHex, 'hex'));
        const plain = Buffer.concat([decipher.update(Buffer.from(ciphertextHex, 'hex')), decipher.final()]);
        candidates.push(utf8.decode(plain));
      } catch {
        // wrong key (bad padding or not text): try the next one
      }
    }
    if (candidates.length === 1) return candidates[0]!;
    if (candidates.length === 0) throw new VaultError('legacy value decrypts under none of the configured keys');
    throw new VaultError('legacy value decrypts under more than one configured key; refusing to guess');
  }
}
