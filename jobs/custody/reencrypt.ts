// Rotation: rewrites every stored secret that is in the seed's legacy CBC format or under a key now
// in ENCRYPTION_KEYS_OLD, so the old key can be retired. `npm run keys:reencrypt` runs it; running
// it again finds nothing left to do.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { queryRows, type Executor } from '../../db/client.ts';
import type { Chain } from '../config.ts';
import { accountXpub, addressOfPrivateKey } from './hd.ts';
import type { Vault } from './vault.ts';
import { openCustody } from './wallets.ts';

const PAGE_SIZE = 500;

export async function reencryptAll(db: Executor, vault: Vault): Promise<{ masterWallets: number; depositAddresses: number }> {
  return {
    masterWallets: await reencryptMasterWallets(db, vault),
    depositAddresses: await reencryptDepositAddresses(db, vault),
  };
}

/** Values not already under the current key, as a LIKE pattern (key ids are hex: no wildcards). */
const notCurrent = (vault: Vault) => `v2:${vault.currentKeyId}:%`;

async function reencryptMasterWallets(db: Executor, vault: Vault): Promise<number> {
  const rows = await queryRows<{ chain: Chain; xpub: string; mnemonic_encrypted: string }>(
    db,
    sql`select chain, xpub, mnemonic_encrypted from master_wallets where mnemonic_encrypted not like ${notCurrent(vault)} order by chain`,
  );
  let rewritten = 0;
  for (const row of rows) {
    const mnemonic = decryptRow(vault, row.mnemonic_encrypted, `master_wallets ${row.chain}`);
    // Legacy CBC has no authentication: prove the plaintext is the real mnemonic before sealing it.
    if (accountXpub(row.chain, mnemonic) !== row.xpub) {
      throw new Error(`master_wallets ${row.chain}: the decrypted mnemonic does not derive the stored xpub; left as it was`);
    }
    // One statement, so its own short transaction. The guard on the old value makes a concurrent
    // rewrite win: this update then matches nothing instead of clobbering it.
    const updated = await queryRows(
      db,
      sql`update master_wallets set mnemonic_encrypted = ${vault.encrypt(mnemonic)}
          where chain = ${row.chain} and mnemonic_encrypted = ${row.mnemonic_encrypted} returning chain`,
    );
    rewritten += updated.length;
  }
  return rewritten;
}

async function reencryptDepositAddresses(db: Executor, vault: Vault): Promise<number> {
  let rewritten = 0;
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    // Keyset pages over the rows still needing work, so a large table is never loaded at once.
    const rows = await queryRows<{ id: string; chain: Chain; address: string; private_key_encrypted: string }>(
      db,
      sql`select id, chain, address, private_key_encrypted from deposit_addresses
          where private_key_encrypted is not null and private_key_encrypted not like ${notCurrent(vault)} and id > ${after}
          order by id limit ${PAGE_SIZE}`,
    );
    for (const row of rows) {
      const privateKey = decryptRow(vault, row.private_key_encrypted, `deposit_addresses ${row.id} (${row.chain})`);
      if (addressOfPrivateKey(row.chain, privateKey) !== row.address) {
        throw new Error(`deposit_addresses ${row.id} (${row.chain}): the decrypted key does not control the stored address; left as it was`);
      }
      const updated = await queryRows(
        db,
        sql`update deposit_addresses set private_key_encrypted = ${vault.encrypt(privateKey)}, updated_at = now()
            where id = ${row.id} and private_key_encrypted = ${row.private_key_encrypted} returning id`,
      );
      rewritten += updated.length;
    }
    if (rows.length < PAGE_SIZE) return rewritten;
    after = rows[rows.length - 1]!.id;
  }
}

/** Decrypts one row's value; a failure names the row (never its content) so it can be found. */
function decryptRow(vault: Vault, stored: string, row: string): string {
  try {
    return vault.decrypt(stored);
  } catch (err) {
    throw new Error(`${row}: ${(err as Error).message}`, { cause: err });
  }
}

async function main(): Promise<void> {
  const custody = await openCustody('keys-reencrypt');
  try {
    const counts = await reencryptAll(custody.db, custody.vault);
    console.log(`re-encrypted under key ${custody.vault.currentKeyId}: ${counts.masterWallets} master wallet(s), ${counts.depositAddresses} deposit address key(s)`);
  } catch (err) {
    console.error(`keys:reencrypt failed: ${(err as Error).message}`);
    process.exitCode = 1;
  } finally {
    await custody.close();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
