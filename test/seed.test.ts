import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CURRENCIES, seedCurrencies } from '../db/seed/currencies.ts';
import { createTestDatabase } from './helpers/database.ts';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.drop());

describe('the currency seed', () => {
  it('holds the nine currencies with the chains’ real decimals and contracts (pitfall #11)', async () => {
    const { rows } = await database.query('select code, chain, kind, contract_address, decimals, enabled from wallet_currencies order by code');
    expect(rows).toEqual([
      { code: 'BSC', chain: 'bsc', kind: 'native', contract_address: null, decimals: 18, enabled: true },
      { code: 'BTC', chain: 'bitcoin', kind: 'native', contract_address: null, decimals: 8, enabled: true },
      { code: 'ETH', chain: 'ethereum', kind: 'native', contract_address: null, decimals: 18, enabled: true },
      { code: 'LTC', chain: 'litecoin', kind: 'native', contract_address: null, decimals: 8, enabled: true },
      { code: 'TRON', chain: 'tron', kind: 'native', contract_address: null, decimals: 6, enabled: true },
      { code: 'USDC', chain: 'ethereum', kind: 'token', contract_address: '0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48', decimals: 6, enabled: true },
      { code: 'USDT', chain: 'ethereum', kind: 'token', contract_address: '0xdac17f958d2ee523a2206206994597c13d831ec7', decimals: 6, enabled: true },
      { code: 'USDT_BSC', chain: 'bsc', kind: 'token', contract_address: '0x55d398326f99059fF775485246999027B3197955', decimals: 18, enabled: true },
      { code: 'USDT_TRON', chain: 'tron', kind: 'token', contract_address: 'TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t', decimals: 6, enabled: true },
    ]);
    expect(CURRENCIES).toHaveLength(9);
  });

  it('re-seeding corrects reference facts but keeps the operator’s enabled switch', async () => {
    await database.query("update wallet_currencies set decimals = 18, enabled = false where code = 'USDT'");
    await seedCurrencies(database.handle.db);
    const { rows } = await database.query("select decimals, enabled from wallet_currencies where code = 'USDT'");
    expect(rows[0]).toEqual({ decimals: 6, enabled: false });
  });

  it('rejects a token without a contract and a native coin with one', async () => {
    await expect(
      database.query("insert into wallet_currencies (code, chain, kind, decimals) values ('USDX', 'ethereum', 'token', 6)"),
    ).rejects.toMatchObject({ constraint: 'wallet_currencies_contract' });
    await expect(
      database.query("insert into wallet_currencies (code, chain, kind, contract_address, decimals) values ('XYZ', 'bsc', 'native', '0x1', 18)"),
    ).rejects.toMatchObject({ constraint: 'wallet_currencies_contract' });
  });
});
