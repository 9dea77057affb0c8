// Local HD derivation (BIP-39 mnemonic → BIP-32/44 keys → chain addresses). Keys are derived here,
// in-process, so the mnemonic never leaves the machine (pitfall #4). Everything is pure: no I/O.
//
// Conventions (Tatum's, so the addresses Tatum derives from our xpub are the ones we hold keys for):
// - The account key is m/44'/coin'/0'/0 and address i is its child i (non-hardened), so the xpub
//   alone gives every address and a private key exists for each one.
// - Index 0 is Tatum's "system address" for custodial withdrawals and is never a user address:
//   user indexes are 1..2^31-1, and anything else is rejected.
// - Extended keys: standard xpub/xprv for bitcoin, ethereum, bsc and tron. Litecoin uses the
//   "Ltub"/"Ltpv" version bytes Tatum's own SDK uses for LTC (public 0x019da462, private 0x019d9cfe);
//   addressFromXpub accepts exactly what accountXpub produces for the chain, nothing else.
// - Private keys: bitcoin and litecoin as compressed WIF (what their wallets import), ethereum and
//   bsc as 0x-prefixed hex, tron as 64 hex digits without 0x (what TronWeb/TronLink take).
import { pbkdf2Sync } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { ripemd160 } from '@noble/hashes/legacy.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { createBase58check, hex } from '@scure/base';
import { HDKey, HARDENED_OFFSET, type Versions } from '@scure/bip32';
import * as bip39 from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { CHAINS, type Chain } from '../config.ts';

const base58check = createBase58check(sha256);

const BITCOIN_VERSIONS: Versions = { public: 0x0488b21e, private: 0x0488ade4 };
const LITECOIN_VERSIONS: Versions = { public: 0x019da462, private: 0x019d9cfe };

type Family = 'utxo' | 'evm' | 'tron';

interface ChainSpec {
  coin: number;
  family: Family;
  versions: Versions;
  /** utxo only: P2PKH address version byte and WIF version byte. */
  p2pkh?: number;
  wif?: number;
}

const SPECS: Record<Chain, ChainSpec> = {
  bitcoin: { coin: 0, family: 'utxo', versions: BITCOIN_VERSIONS, p2pkh: 0x00, wif: 0x80 },
  litecoin: { coin: 2, family: 'utxo', versions: LITECOIN_VERSIONS, p2pkh: 0x30, wif: 0xb0 },
  ethereum: { coin: 60, family: 'evm', versions: BITCOIN_VERSIONS },
  // BSC reuses Ethereum's coin type, as Tatum does: the same index gives the same address.
  bsc: { coin: 60, family: 'evm', versions: BITCOIN_VERSIONS },
  tron: { coin: 195, family: 'tron', versions: BITCOIN_VERSIONS },
};

/** Depth of m/44'/coin'/0'/0, the key whose xpub Tatum accounts are created with. */
const ACCOUNT_DEPTH = 4;

/** The highest non-hardened BIP-32 child index. */
export const MAX_INDEX = HARDENED_OFFSET - 1;

function spec(chain: Chain): ChainSpec {
  // An unknown chain is an error, never a silent default (pitfall #15).
  if (!(CHAINS as readonly string[]).includes(chain)) {
    throw new Error(`Unsupported chain "${String(chain)}": expected one of ${CHAINS.join(', ')}`);
  }
  return SPECS[chain];
}

function checkUserIndex(index: number): number {
  if (!Number.isInteger(index) || index < 1 || index > MAX_INDEX) {
    throw new RangeError(
      `Derivation index must be an integer from 1 to ${MAX_INDEX} (0 is Tatum's system address), got ${String(index)}`,
    );
  }
  return index;
}

/**
 * A chain's private account key, m/44'/coin'/0'/0: derived once from the mnemonic (the costly part),
 * then the key of any index is one cheap child derivation (privateKeyAt).
 */
export interface AccountKey {
  readonly chain: Chain;
  readonly node: HDKey;
}

export function accountKey(chain: Chain, mnemonic: string): AccountKey {
  const { coin, versions } = spec(chain);
  // The message deliberately does not echo the input: it is a secret.
  if (!bip39.validateMnemonic(mnemonic, wordlist)) throw new Error('Invalid BIP-39 mnemonic');
  // BIP-39's seed is PBKDF2-HMAC-SHA512(NFKD(mnemonic), "mnemonic", 2048 rounds, 64 bytes); OpenSSL's
  // PBKDF2 computes the same seed several times faster than a JavaScript one (the vectors prove it).
  const seed = pbkdf2Sync(mnemonic.normalize('NFKD'), 'mnemonic', 2048, 64, 'sha512');
  return { chain, node: HDKey.fromMasterSeed(seed, versions).derive(`m/44'/${coin}'/0'/0`) };
}

/** The private key of child `index` of an account key, in the chain's usual format (see the header). */
export function privateKeyAt(account: AccountKey, index: number): string {
  const key = account.node.deriveChild(checkUserIndex(index)).privateKey;
  if (!key) throw new Error(`Could not derive a ${account.chain} private key`);
  return encodePrivateKey(account.chain, key);
}

/** A fresh 24-word BIP-39 mnemonic (256 bits of entropy from the platform CSPRNG). */
export function generateMnemonic(): string {
  return bip39.generateMnemonic(wordlist, 256);
}

/** The extended public key of m/44'/coin'/0'/0: what Tatum accounts are created with. */
export function accountXpub(chain: Chain, mnemonic: string): string {
  return accountKey(chain, mnemonic).node.publicExtendedKey;
}

/** The address of child `index` of an xpub produced by accountXpub for the same chain. */
export function addressFromXpub(chain: Chain, xpub: string, index: number): string {
  const { versions } = spec(chain);
  checkUserIndex(index);
  let account: HDKey;
  try {
    account = HDKey.fromExtendedKey(xpub, versions);
  } catch {
    throw new Error(`Not a ${chain} account xpub`);
  }
  if (account.privateKey) throw new Error(`Expected a ${chain} extended public key, got a private one`);
  // Any other depth would derive valid-looking addresses that no key of ours controls.
  if (account.depth !== ACCOUNT_DEPTH) {
    throw new Error(`Expected a ${chain} account xpub (m/44'/coin'/0'/0, depth ${ACCOUNT_DEPTH}), got depth ${account.depth}`);
  }
  const publicKey = account.deriveChild(index).publicKey;
  if (!publicKey) throw new Error(`Could not derive ${chain} child ${index}`);
  return addressOfPublicKey(chain, publicKey);
}

/** The private key of m/44'/coin'/0'/0/index, in the chain's usual format (see the header). */
export function privateKeyFor(chain: Chain, mnemonic: string, index: number): string {
  return privateKeyAt(accountKey(chain, mnemonic), index);
}

/** The address a private key (in privateKeyFor's format) controls. */
export function addressOfPrivateKey(chain: Chain, privateKey: string): string {
  const key = decodePrivateKey(chain, privateKey);
  return addressOfPublicKey(chain, secp256k1.getPublicKey(key, true));
}

/** The address of a secp256k1 public key (compressed or not) on `chain`. */
export function addressOfPublicKey(chain: Chain, publicKey: Uint8Array): string {
  const s = spec(chain);
  const point = secp256k1.Point.fromBytes(publicKey);
  switch (s.family) {
    case 'utxo':
      // P2PKH hashes the compressed key: that is what BIP-44 wallets (and Tatum) use.
      return base58check.encode(concat([s.p2pkh!], ripemd160(sha256(point.toBytes(true)))));
    case 'evm':
      return toChecksumAddress(hex.encode(keccak20(point.toBytes(false))));
    case 'tron':
      return base58check.encode(concat([0x41], keccak20(point.toBytes(false))));
  }
}

/** Last 20 bytes of keccak-256 over the uncompressed key without its 0x04 prefix. */
function keccak20(uncompressed: Uint8Array): Uint8Array {
  return keccak_256(uncompressed.subarray(1)).subarray(12);
}

/** EIP-55: a hex digit is upper-cased where the keccak of the lower-case address has a nibble >= 8. */
function toChecksumAddress(lowerHex: string): string {
  const hash = hex.encode(keccak_256(new TextEncoder().encode(lowerHex)));
  let out = '0x';
  for (let i = 0; i < lowerHex.length; i++) {
    out += parseInt(hash[i]!, 16) >= 8 ? lowerHex[i]!.toUpperCase() : lowerHex[i]!;
  }
  return out;
}

function encodePrivateKey(chain: Chain, key: Uint8Array): string {
  const s = spec(chain);
  switch (s.family) {
    case 'utxo':
      // WIF: version byte, the 32-byte key, then 0x01 meaning "use the compressed public key".
      return base58check.encode(concat([s.wif!], key, [0x01]));
    case 'evm':
      return `0x${hex.encode(key)}`;
    case 'tron':
      return hex.encode(key);
  }
}

// Errors here never quote the input: it is (or was meant to be) a private key.
function decodePrivateKey(chain: Chain, encoded: string): Uint8Array {
  const s = spec(chain);
  let key: Uint8Array | undefined;
  switch (s.family) {
    case 'utxo': {
      let bytes: Uint8Array | undefined;
      try {
        bytes = base58check.decode(encoded);
      } catch {
        bytes = undefined;
      }
      if (bytes && bytes.length === 34 && bytes[0] === s.wif && bytes[33] === 0x01) key = bytes.subarray(1, 33);
      break;
    }
    case 'evm':
      if (/^0x[0-9a-fA-F]{64}$/.test(encoded)) key = hex.decode(encoded.slice(2).toLowerCase());
      break;
    case 'tron':
      if (/^[0-9a-fA-F]{64}$/.test(encoded)) key = hex.decode(encoded.toLowerCase());
      break;
  }
  if (!key || !secp256k1.utils.isValidSecretKey(key)) {
    throw new Error(`Malformed ${chain} private key (expected ${PRIVATE_KEY_FORMAT[s.family]})`);
  }
  return key;
}

const PRIVATE_KEY_FORMAT: Record<Family, string> = {
  utxo: 'a compressed WIF for this chain',
  evm: '0x followed by 64 hex digits',
  tron: '64 hex digits',
};

function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
