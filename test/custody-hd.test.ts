// Derivation vectors. Sources:
// - BIP-39: the reference vectors by Trezor, https://github.com/trezor/python-mnemonic/blob/master/vectors.json
//   (entropy, mnemonic, seed with passphrase "TREZOR", BIP-32 root xprv), as linked from
//   https://github.com/bitcoin/bips/blob/master/bip-0039.mediawiki#test-vectors
// - BIP-32: test vector 1, https://github.com/bitcoin/bips/blob/master/bip-0032.mediawiki#test-vector-1
// - Addresses of "abandon ×11 about" at m/44'/coin'/0'/0/i: the values every BIP-44 wallet shows and
//   Ian Coleman's BIP39 tool (https://iancoleman.io/bip39/, BIP44 tab) reproduces. Bitcoin's
//   m/44'/0'/0' xpub and first address are also SLIP-0132's test vector
//   (https://github.com/satoshilabs/slips/blob/master/slip-0132.md#bitcoin-test-vectors); the TRON
//   address is the one Ledger's app-tron tests expect; ETH index 0/1 are MetaMask's first two accounts.
import { HDKey } from '@scure/bip32';
import * as bip39 from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { describe, expect, it } from 'vitest';
import { CHAINS, type Chain } from '../jobs/config.ts';
import {
  accountXpub,
  addressFromXpub,
  addressOfPrivateKey,
  addressOfPublicKey,
  generateMnemonic,
  MAX_INDEX,
  privateKeyFor,
} from '../jobs/custody/hd.ts';

const ABANDON = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
const LTUB = { public: 0x019da462, private: 0x019d9cfe };

const trezorVectors = [
  {
    entropy: '00000000000000000000000000000000',
    mnemonic: ABANDON,
    seed: 'c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04',
    xprv: 'xprv9s21ZrQH143K3h3fDYiay8mocZ3afhfULfb5GX8kCBdno77K4HiA15Tg23wpbeF1pLfs1c5SPmYHrEpTuuRhxMwvKDwqdKiGJS9XFKzUsAF',
  },
  {
    entropy: '0000000000000000000000000000000000000000000000000000000000000000',
    mnemonic: `${'abandon '.repeat(23)}art`,
    seed: 'bda85446c68413707090a52022edd26a1c9462295029f2e60cd7c4f2bbd3097170af7a4d73245cafa9c3cca8d561a7c3de6f5d4a10be8ed2a5e608d68f92fcc8',
    xprv: 'xprv9s21ZrQH143K32qBagUJAMU2LsHg3ka7jqMcV98Y7gVeVyNStwYS3U7yVVoDZ4btbRNf4h6ibWpY22iRmXq35qgLs79f312g2kj5539ebPM',
  },
  {
    entropy: '68a79eaca2324873eacc50cb9c6eca8cc68ea5d936f98787c60c7ebc74e6ce7c',
    mnemonic: 'hamster diagram private dutch cause delay private meat slide toddler razor book happy fancy gospel tennis maple dilemma loan word shrug inflict delay length',
    seed: '64c87cde7e12ecf6704ab95bb1408bef047c22db4cc7491c4271d170a1b213d20b385bc1588d9c7b38f1b39d415665b8a9030c9ec653d75e65f847d8fc1fc440',
    xprv: 'xprv9s21ZrQH143K2XTAhys3pMNcGn261Fi5Ta2Pw8PwaVPhg3D8DWkzWQwjTJfskj8ofb81i9NP2cUNKxwjueJHHMQAnxtivTA75uUFqPFeWzk',
  },
];

/** Address at m/44'/coin'/0'/0/i, through the account xpub accountXpub publishes. */
function addressAt(chain: Chain, index: number): string {
  const versions = chain === 'litecoin' ? LTUB : undefined;
  const child = HDKey.fromExtendedKey(accountXpub(chain, ABANDON), versions).deriveChild(index);
  return addressOfPublicKey(chain, child.publicKey!);
}

describe('BIP-39 and BIP-32 reference vectors (the libraries this module stands on)', () => {
  it.each(trezorVectors)('Trezor vector $entropy', ({ entropy, mnemonic, seed, xprv }) => {
    expect(bip39.entropyToMnemonic(Buffer.from(entropy, 'hex'), wordlist)).toBe(mnemonic);
    const derivedSeed = bip39.mnemonicToSeedSync(mnemonic, 'TREZOR');
    expect(Buffer.from(derivedSeed).toString('hex')).toBe(seed);
    expect(HDKey.fromMasterSeed(derivedSeed).privateExtendedKey).toBe(xprv);
  });

  it('BIP-32 test vector 1: master keys, a private and a public child derivation', () => {
    const master = HDKey.fromMasterSeed(Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex'));
    expect(master.privateExtendedKey).toBe('xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi');
    expect(master.publicExtendedKey).toBe('xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8');
    const child = master.derive("m/0'/1");
    expect(child.privateExtendedKey).toBe('xprv9wTYmMFdV23N2TdNG573QoEsfRrWKQgWeibmLntzniatZvR9BmLnvSxqu53Kw1UmYPxLgboyZQaXwTCg8MSY3H2EU4pWcQDnRnrVA1xe8fs');
    expect(child.publicExtendedKey).toBe('xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ');
    // m/0' → m/0'/1 from the public key alone: the derivation addressFromXpub relies on.
    const hardenedPublic = HDKey.fromExtendedKey('xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LHhwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw');
    expect(hardenedPublic.deriveChild(1).publicExtendedKey).toBe(child.publicExtendedKey);
  });
});

describe('known addresses of "abandon … about"', () => {
  it.each([
    ['bitcoin', '1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabA', '1Ak8PffB2meyfYnbXZR9EGfLfFZVpzJvQP'],
    ['ethereum', '0x9858EfFD232B4033E47d90003D41EC34EcaEda94', '0x6Fac4D18c912343BF86fa7049364Dd4E424Ab9C0'],
    ['bsc', '0x9858EfFD232B4033E47d90003D41EC34EcaEda94', '0x6Fac4D18c912343BF86fa7049364Dd4E424Ab9C0'],
    ['tron', 'TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH', 'TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK'],
    ['litecoin', 'LUWPbpM43E2p7ZSh8cyTBEkvpHmr3cB8Ez', 'Ldatw8ZjgMGNUo5HMN6RgCrjmh7q494Si3'],
  ] as const)('%s: index 0 and 1', (chain, first, second) => {
    expect(addressAt(chain, 0)).toBe(first);
    expect(addressAt(chain, 1)).toBe(second);
    expect(addressFromXpub(chain, accountXpub(chain, ABANDON), 1)).toBe(second);
    expect(addressOfPrivateKey(chain, privateKeyFor(chain, ABANDON, 1))).toBe(second);
  });

  it("bitcoin's account xpub is child 0 of SLIP-0132's m/44'/0'/0' xpub", () => {
    const slip132 = HDKey.fromExtendedKey('xpub6BosfCnifzxcFwrSzQiqu2DBVTshkCXacvNsWGYJVVhhawA7d4R5WSWGFNbi8Aw6ZRc1brxMyWMzG3DSSSSoekkudhUd9yLb6qx39T9nMdj');
    expect(accountXpub('bitcoin', ABANDON)).toBe(slip132.deriveChild(0).publicExtendedKey);
  });

  it('reads published private keys of index 0 in the documented formats', () => {
    // m/44'/0'/0'/0/0 as WIF and m/44'/60'/0'/0/0 as hex, as wallets export them.
    expect(addressOfPrivateKey('bitcoin', 'L4p2b9VAf8k5aUahF1JCJUzZkgNEAqLfq8DDdQiyAprQAKSbu8hf')).toBe('1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabA');
    expect(addressOfPrivateKey('ethereum', '0x1ab42cc412b618bdea3a599e3c9bae199ebf030895b039e9db1e30dafb12b727')).toBe('0x9858EfFD232B4033E47d90003D41EC34EcaEda94');
  });

  it('writes extended keys with the documented version bytes', () => {
    expect(accountXpub('bitcoin', ABANDON)).toMatch(/^xpub/);
    expect(accountXpub('ethereum', ABANDON)).toMatch(/^xpub/);
    expect(accountXpub('tron', ABANDON)).toMatch(/^xpub/);
    expect(accountXpub('litecoin', ABANDON)).toMatch(/^Ltub/);
    expect(accountXpub('bsc', ABANDON)).toBe(accountXpub('ethereum', ABANDON));
  });
});

describe('local derivation', () => {
  const mnemonic = generateMnemonic();

  it('generates 24-word BIP-39 mnemonics, fresh each time', () => {
    expect(mnemonic.split(' ')).toHaveLength(24);
    expect(bip39.validateMnemonic(mnemonic, wordlist)).toBe(true);
    expect(generateMnemonic()).not.toBe(mnemonic);
  });

  it.each(CHAINS)('%s: the xpub address equals the address of the derived private key', (chain) => {
    const xpub = accountXpub(chain, mnemonic);
    for (const index of [1, 2, 7, 1000, MAX_INDEX]) {
      const key = privateKeyFor(chain, mnemonic, index);
      expect(addressOfPrivateKey(chain, key)).toBe(addressFromXpub(chain, xpub, index));
    }
  });

  it('keys come in the documented formats', () => {
    expect(privateKeyFor('bitcoin', mnemonic, 1)).toMatch(/^[KL][1-9A-HJ-NP-Za-km-z]{51}$/);
    expect(privateKeyFor('litecoin', mnemonic, 1)).toMatch(/^T[1-9A-HJ-NP-Za-km-z]{51}$/);
    expect(privateKeyFor('ethereum', mnemonic, 1)).toMatch(/^0x[0-9a-f]{64}$/);
    expect(privateKeyFor('tron', mnemonic, 1)).toMatch(/^[0-9a-f]{64}$/);
    expect(addressFromXpub('bitcoin', accountXpub('bitcoin', mnemonic), 3)).toMatch(/^1/);
    expect(addressFromXpub('litecoin', accountXpub('litecoin', mnemonic), 3)).toMatch(/^L/);
    expect(addressFromXpub('tron', accountXpub('tron', mnemonic), 3)).toMatch(/^T/);
  });

  it('ETH and BSC give the same address and key at every index', () => {
    for (const index of [1, 2, 99]) {
      expect(addressFromXpub('bsc', accountXpub('bsc', mnemonic), index)).toBe(addressFromXpub('ethereum', accountXpub('ethereum', mnemonic), index));
      expect(privateKeyFor('bsc', mnemonic, index)).toBe(privateKeyFor('ethereum', mnemonic, index));
    }
  });

  it('different indexes and chains give different addresses', () => {
    const addresses = CHAINS.filter((c) => c !== 'bsc').flatMap((chain) =>
      [1, 2, 3].map((i) => addressFromXpub(chain, accountXpub(chain, mnemonic), i)),
    );
    expect(new Set(addresses).size).toBe(addresses.length);
  });
});

describe('refusals', () => {
  const xpub = accountXpub('ethereum', ABANDON);

  it('rejects index 0 (Tatum system address), negatives, fractions and hardened indexes', () => {
    for (const index of [0, -1, 1.5, MAX_INDEX + 1, Number.NaN]) {
      expect(() => addressFromXpub('ethereum', xpub, index)).toThrow(/integer from 1 to 2147483647/);
      expect(() => privateKeyFor('ethereum', ABANDON, index)).toThrow(/integer from 1 to 2147483647/);
    }
  });

  it('rejects an unknown chain instead of defaulting', () => {
    const bogus = 'dogecoin' as Chain;
    expect(() => accountXpub(bogus, ABANDON)).toThrow(/Unsupported chain "dogecoin"/);
    expect(() => addressFromXpub(bogus, xpub, 1)).toThrow(/Unsupported chain/);
    expect(() => privateKeyFor(bogus, ABANDON, 1)).toThrow(/Unsupported chain/);
    expect(() => addressOfPrivateKey(bogus, '00'.repeat(32))).toThrow(/Unsupported chain/);
    expect(() => accountXpub('__proto__' as Chain, ABANDON)).toThrow(/Unsupported chain/);
  });

  it("rejects another chain's extended key and private extended keys", () => {
    expect(() => addressFromXpub('litecoin', xpub, 1)).toThrow(/Not a litecoin account xpub/);
    expect(() => addressFromXpub('bitcoin', accountXpub('litecoin', ABANDON), 1)).toThrow(/Not a bitcoin account xpub/);
    const xprv = HDKey.fromMasterSeed(bip39.mnemonicToSeedSync(ABANDON)).derive("m/44'/60'/0'/0").privateExtendedKey;
    expect(() => addressFromXpub('ethereum', xprv, 1)).toThrow(/got a private one/);
    expect(() => addressFromXpub('ethereum', 'not an xpub', 1)).toThrow(/Not a ethereum account xpub/);
    const slip132Account = 'xpub6BosfCnifzxcFwrSzQiqu2DBVTshkCXacvNsWGYJVVhhawA7d4R5WSWGFNbi8Aw6ZRc1brxMyWMzG3DSSSSoekkudhUd9yLb6qx39T9nMdj';
    expect(() => addressFromXpub('bitcoin', slip132Account, 1)).toThrow(/got depth 3/);
  });

  it('rejects an invalid mnemonic without echoing it', () => {
    const wrong = ABANDON.replace('about', 'zoo');
    for (const fn of [() => accountXpub('tron', wrong), () => privateKeyFor('tron', wrong, 1)]) {
      expect(fn).toThrow('Invalid BIP-39 mnemonic');
    }
  });

  it("rejects a key in another chain's format without echoing it", () => {
    const btcKey = privateKeyFor('bitcoin', ABANDON, 1);
    const ethKey = privateKeyFor('ethereum', ABANDON, 1);
    const cases: [Chain, string][] = [
      ['litecoin', btcKey],
      ['ethereum', btcKey],
      ['tron', ethKey],
      ['bitcoin', ethKey],
      ['ethereum', ethKey.slice(2)],
      ['ethereum', `0x${'00'.repeat(32)}`], // zero is not a valid secp256k1 key
    ];
    for (const [chain, key] of cases) {
      let message = '';
      try {
        addressOfPrivateKey(chain, key);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(new RegExp(`^Malformed ${chain} private key`));
      expect(message).not.toContain(key);
    }
  });
});
