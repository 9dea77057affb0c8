// The nine wallet currencies the platform offers. Decimals and contracts are the chains' own
// (pitfalls.md #11: the old seed said 18 for USDT/USDC/BTC and called native BSC a token).
import { sql } from 'drizzle-orm';
import type { Executor } from '../client.ts';
import { walletCurrencies } from '../schema.ts';

export type WalletCurrencySeed = typeof walletCurrencies.$inferInsert;

export const CURRENCIES: readonly WalletCurrencySeed[] = [
  { code: 'BTC', chain: 'bitcoin', kind: 'native', contractAddress: null, decimals: 8 },
  { code: 'ETH', chain: 'ethereum', kind: 'native', contractAddress: null, decimals: 18 },
  // ERC-20 Tether and USD Coin on Ethereum mainnet.
  { code: 'USDT', chain: 'ethereum', kind: 'token', contractAddress: '0xdac17f958d2ee523a2206206994597c13d831ec7', decimals: 6 },
  { code: 'USDC', chain: 'ethereum', kind: 'token', contractAddress: '0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48', decimals: 6 },
  // TRX; Tatum's ledger code is TRON, not TRX.
  { code: 'TRON', chain: 'tron', kind: 'native', contractAddress: null, decimals: 6 },
  { code: 'USDT_TRON', chain: 'tron', kind: 'token', contractAddress: 'TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t', decimals: 6 },
  // BNB on BNB Smart Chain is the native coin; Binance-Peg USDT (BEP-20) has 18 decimals.
  { code: 'BSC', chain: 'bsc', kind: 'native', contractAddress: null, decimals: 18 },
  { code: 'USDT_BSC', chain: 'bsc', kind: 'token', contractAddress: '0x55d398326f99059fF775485246999027B3197955', decimals: 18 },
  { code: 'LTC', chain: 'litecoin', kind: 'native', contractAddress: null, decimals: 8 },
];

/**
 * Inserts missing currencies and corrects the reference facts of existing ones. `enabled` is the
 * operator's switch, so an existing row keeps it.
 */
export async function seedCurrencies(db: Executor): Promise<void> {
  await db
    .insert(walletCurrencies)
    .values([...CURRENCIES])
    .onConflictDoUpdate({
      target: walletCurrencies.code,
      set: {
        chain: sql`excluded.chain`,
        kind: sql`excluded.kind`,
        contractAddress: sql`excluded.contract_address`,
        decimals: sql`excluded.decimals`,
      },
    });
}
