// Master wallets: one BIP-39 mnemonic per chain, generated here and never sent anywhere. The account
// xpub is stored in clear (Tatum accounts are created with it); the mnemonic only encrypted.
import { eq, inArray } from 'drizzle-orm';
import { openDatabase, type Database, type DatabaseHandle, type Executor } from '../../db/client.ts';
import { migrateDatabase } from '../../db/migrate.ts';
import { masterWallets } from '../../db/schema.ts';
import { CHAINS, loadConfig, type Chain } from '../config.ts';
import { createLogger } from '../logger.ts';
import { resolveSecrets, type RuntimeConfig } from '../secrets.ts';
import { accountKey, accountXpub, generateMnemonic, type AccountKey } from './hd.ts';
import { Vault } from './vault.ts';

export class MissingWalletError extends Error {
  constructor(readonly chain: Chain) {
    super(`No master wallet for ${chain}: run \`npm run wallets:init\` first`);
    this.name = 'MissingWalletError';
  }
}

/**
 * Creates the master wallet of each chain in `chains` that has none. An existing wallet is never
 * touched: the insert skips a chain that already has a row, so two processes starting together end
 * with exactly one wallet per chain, whichever wrote first.
 */
export async function ensureMasterWallets(
  db: Executor,
  vault: Vault,
  chains: readonly Chain[] = CHAINS,
): Promise<{ created: Chain[]; existing: Chain[] }> {
  const present = await db.select({ chain: masterWallets.chain }).from(masterWallets).where(inArray(masterWallets.chain, [...chains]));
  const missing = chains.filter((chain) => !present.some((row) => row.chain === chain));

  let created: Chain[] = [];
  if (missing.length > 0) {
    const rows = missing.map((chain) => {
      const mnemonic = generateMnemonic();
      return { chain, xpub: accountXpub(chain, mnemonic), mnemonicEncrypted: vault.encrypt(mnemonic) };
    });
    // ON CONFLICT (chain) DO NOTHING: a concurrent creator's row wins and ours is discarded, never
    // overwriting it. RETURNING lists only the rows this statement actually inserted.
    const inserted = await db
      .insert(masterWallets)
      .values(rows)
      .onConflictDoNothing({ target: masterWallets.chain })
      .returning({ chain: masterWallets.chain });
    created = chains.filter((chain) => inserted.some((row) => row.chain === chain));
  }
  return { created, existing: chains.filter((chain) => !created.includes(chain)) };
}

/** The chain's account xpub (m/44'/coin'/0'/0). */
export async function loadXpub(db: Executor, chain: Chain): Promise<string> {
  const [row] = await db.select({ xpub: masterWallets.xpub }).from(masterWallets).where(eq(masterWallets.chain, chain));
  if (!row) throw new MissingWalletError(chain);
  return row.xpub;
}

/**
 * The chain's decrypted mnemonic, for deriving private keys locally. It is checked against the
 * stored xpub, so a key is never derived from a mnemonic that does not back the chain's addresses.
 */
export async function loadMnemonic(db: Executor, vault: Vault, chain: Chain): Promise<string> {
  return (await loadWallet(db, vault, chain)).mnemonic;
}

async function loadWallet(db: Executor, vault: Vault, chain: Chain): Promise<{ mnemonic: string; key: AccountKey }> {
  const [row] = await db
    .select({ xpub: masterWallets.xpub, mnemonicEncrypted: masterWallets.mnemonicEncrypted })
    .from(masterWallets)
    .where(eq(masterWallets.chain, chain));
  if (!row) throw new MissingWalletError(chain);
  const mnemonic = vault.decrypt(row.mnemonicEncrypted);
  const key = accountKey(chain, mnemonic);
  if (key.node.publicExtendedKey !== row.xpub) {
    throw new Error(`The ${chain} master wallet's mnemonic does not derive its stored xpub; refusing to use it`);
  }
  return { mnemonic, key };
}

/** A chain's account key, for deriving the private key of any index. */
export type Keyring = (chain: Chain) => Promise<AccountKey>;

/**
 * The master wallets' account keys, each decrypted, checked against its xpub and derived once per
 * process, then kept in memory: the mnemonic's PBKDF2 and the hardened path are the costly part of a
 * key, and a provisioning worker needs one key per user and chain. The process holds ENCRYPTION_KEY
 * anyway, so memory holds nothing it could not already reach.
 */
export function createKeyring(db: Executor, vault: Vault): Keyring {
  const keys = new Map<Chain, Promise<AccountKey>>();
  return (chain) => {
    let key = keys.get(chain);
    if (!key) {
      key = loadWallet(db, vault, chain).then((wallet) => wallet.key);
      keys.set(chain, key);
      key.catch(() => keys.delete(chain)); // a missing wallet may be created later
    }
    return key;
  };
}

export interface CustodyContext {
  config: RuntimeConfig;
  db: Database;
  database: DatabaseHandle;
  vault: Vault;
  close(): Promise<void>;
}

/** What the custody commands share: configuration, sandbox secrets, a migrated database, the vault. */
export async function openCustody(name: string): Promise<CustodyContext> {
  const parsed = loadConfig();
  const log = createLogger({ level: parsed.LOG_LEVEL, name });
  const config = resolveSecrets(parsed, log);
  const vault = Vault.fromConfig(config);
  const database = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolMax: 2, applicationName: name });
  try {
    await migrateDatabase(database);
  } catch (err) {
    await database.close();
    throw err;
  }
  return { config, db: database.db, database, vault, close: () => database.close() };
}
