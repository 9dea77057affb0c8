import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../db/client.ts';
import { migrateDatabase } from '../db/migrate.ts';
import { createEmptyDatabase, type TestDatabase } from './helpers/database.ts';

const TABLES = [
  'deposit_addresses',
  'deposits',
  'master_wallets',
  'rate_limits',
  'sessions',
  'users',
  'verification_codes',
  'virtual_accounts',
  'wallet_currencies',
  'webhook_subscriptions',
];

let database: TestDatabase;
beforeAll(async () => {
  database = await createEmptyDatabase();
});
afterAll(() => database.drop());

describe('migrations', () => {
  it('bring an empty database up, even with two processes starting together', async () => {
    const handles = await Promise.all([1, 2].map(() => openDatabase({ url: database.url, dataDir: 'unused' })));
    try {
      await Promise.all(handles.map((h) => migrateDatabase(h)));
    } finally {
      await Promise.all(handles.map((h) => h.close()));
    }
    const { rows } = await database.query<{ table_name: string }>(
      "select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by 1",
    );
    expect(rows.map((r) => r.table_name)).toEqual(TABLES);
    const applied = await database.query<{ n: number }>('select count(*)::int as n from drizzle.__drizzle_migrations');
    expect(applied.rows[0]?.n).toBeGreaterThanOrEqual(1);
  });

  it('are idempotent: a second run applies nothing and changes nothing', async () => {
    const before = await database.query<{ n: number }>('select count(*)::int as n from drizzle.__drizzle_migrations');
    const handle = await openDatabase({ url: database.url, dataDir: 'unused' });
    try {
      await migrateDatabase(handle);
    } finally {
      await handle.close();
    }
    const after = await database.query<{ n: number }>('select count(*)::int as n from drizzle.__drizzle_migrations');
    expect(after.rows[0]?.n).toBe(before.rows[0]?.n);
    const currencies = await database.query<{ n: number }>('select count(*)::int as n from wallet_currencies');
    expect(currencies.rows[0]?.n).toBe(9);
  });
});
