// What `wallet.accounts` shows a user: one line per currency, with the deposit address once Tatum has
// registered it. Never a key: the query does not read the encrypted columns at all.
import { sql } from 'drizzle-orm';
import { queryRows, type Database } from '../db/client.ts';
import type { Chain } from '../jobs/config.ts';

export interface WalletAccount {
  currency: string;
  chain: Chain;
  status: 'pending' | 'ready' | 'failed';
  address: string | null;
  tatumAccountId: string | null;
  error?: string;
}

export async function listAccounts(db: Database, userId: string): Promise<WalletAccount[]> {
  // Enabled currencies the user has no account for yet show as pending; a currency disabled later
  // still shows the account the user already has.
  const rows = await queryRows<Omit<WalletAccount, 'error'> & { error: string | null }>(db, sql`
    select c.code as currency, c.chain, coalesce(va.status, 'pending') as status,
           case when va.address_assigned_at is not null then da.address end as address,
           va.tatum_account_id as "tatumAccountId", va.last_error as error
    from wallet_currencies c
    left join virtual_accounts va on va.currency = c.code and va.user_id = ${userId}
    left join deposit_addresses da on da.id = va.deposit_address_id
    where c.enabled or va.id is not null
    order by c.chain, c.kind, c.code`);
  return rows.map(({ error, ...account }) => (error && account.status !== 'ready' ? { ...account, error } : account));
}
