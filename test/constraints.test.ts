// The invariants that keep money and keys apart are enforced by Postgres itself: these inserts go
// around the application entirely and are still refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from './helpers/database.ts';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.drop());

async function newUser(email: string): Promise<string> {
  const { rows } = await database.query<{ id: string }>('insert into users (email) values ($1) returning id', [email]);
  return rows[0]!.id;
}

describe('database constraints', () => {
  it('refuse a duplicate email, and a mixed-case one outright', async () => {
    await newUser('alice@example.com');
    await expect(newUser('alice@example.com')).rejects.toMatchObject({ code: '23505', constraint: 'users_email_unique' });
    await expect(newUser('Alice@Example.com')).rejects.toMatchObject({ code: '23514', constraint: 'users_email_lower' });
  });

  it('refuse a derivation index used twice on one chain (pitfall #3)', async () => {
    const [a, b] = [await newUser('a@example.com'), await newUser('b@example.com')];
    await database.query("insert into deposit_addresses (user_id, chain, derivation_index) values ($1, 'ethereum', 1)", [a]);
    await expect(
      database.query("insert into deposit_addresses (user_id, chain, derivation_index) values ($1, 'ethereum', 1)", [b]),
    ).rejects.toMatchObject({ code: '23505', constraint: 'deposit_addresses_chain_index_unique' });
    // The same index on another chain is a different key.
    await database.query("insert into deposit_addresses (user_id, chain, derivation_index) values ($1, 'tron', 1)", [b]);
  });

  it('refuse index 0 (Tatum’s system address) and a second address per user and chain', async () => {
    const c = await newUser('c@example.com');
    await expect(
      database.query("insert into deposit_addresses (user_id, chain, derivation_index) values ($1, 'bitcoin', 0)", [c]),
    ).rejects.toMatchObject({ code: '23514', constraint: 'deposit_addresses_index_positive' });
    await database.query("insert into deposit_addresses (user_id, chain, derivation_index) values ($1, 'bitcoin', 7)", [c]);
    await expect(
      database.query("insert into deposit_addresses (user_id, chain, derivation_index) values ($1, 'bitcoin', 8)", [c]),
    ).rejects.toMatchObject({ code: '23505', constraint: 'deposit_addresses_user_chain_unique' });
  });

  it('refuse an address recorded without its key', async () => {
    const d = await newUser('d@example.com');
    await expect(
      database.query("insert into deposit_addresses (user_id, chain, derivation_index, address) values ($1, 'litecoin', 3, 'Lxyz')", [d]),
    ).rejects.toMatchObject({ code: '23514', constraint: 'deposit_addresses_address_with_key' });
  });

  it('refuse a second virtual account for the same user and currency', async () => {
    const e = await newUser('e@example.com');
    await database.query("insert into virtual_accounts (user_id, currency, account_number) values ($1, 'BTC', 'e-btc')", [e]);
    await expect(
      database.query("insert into virtual_accounts (user_id, currency, account_number) values ($1, 'BTC', 'e-btc-2')", [e]),
    ).rejects.toMatchObject({ code: '23505', constraint: 'virtual_accounts_user_currency_unique' });
  });

  it('refuse a virtual account marked ready before Tatum knows it', async () => {
    const f = await newUser('f@example.com');
    await expect(
      database.query("insert into virtual_accounts (user_id, currency, account_number, status) values ($1, 'ETH', 'f-eth', 'ready')", [f]),
    ).rejects.toMatchObject({ code: '23514', constraint: 'virtual_accounts_ready_complete' });
  });

  it('refuse a deposit reference stored twice', async () => {
    const g = await newUser('g@example.com');
    const { rows } = await database.query<{ id: string }>(
      "insert into virtual_accounts (user_id, currency, account_number) values ($1, 'LTC', 'g-ltc') returning id",
      [g],
    );
    const insert = () =>
      database.query(
        "insert into deposits (reference, virtual_account_id, currency, amount, tx_id, payload) values ('ref-1', $1, 'LTC', '0.5', 'tx', '{}')",
        [rows[0]!.id],
      );
    await insert();
    await expect(insert()).rejects.toMatchObject({ code: '23505', constraint: 'deposits_reference_unique' });
  });
});
