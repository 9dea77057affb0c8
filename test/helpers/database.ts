// A fresh database per test file: created from the admin URL, migrated, dropped afterwards.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { openDatabase, type DatabaseHandle } from '../../db/client.ts';
import { migrateDatabase } from '../../db/migrate.ts';

export interface TestDatabase {
  url: string;
  name: string;
  /** Runs SQL as the admin (for assertions that must bypass the application). */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  drop(): Promise<void>;
}

function withDatabase(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject('adminDatabaseUrl') });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** An empty database (no migrations applied). */
export async function createEmptyDatabase(): Promise<TestDatabase> {
  const name = `test_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`create database ${name}`));
  const url = withDatabase(inject('adminDatabaseUrl'), name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  // `drop database … with (force)` terminates idle clients; that is expected, not a test failure.
  pool.on('error', () => {});
  return {
    url,
    name,
    query: (text, values) => pool.query(text, values),
    async drop() {
      await pool.end();
      await admin((c) => c.query(`drop database if exists ${name} with (force)`));
    },
  };
}

/** A migrated database and an application handle on it. */
export async function createTestDatabase(): Promise<TestDatabase & { handle: DatabaseHandle }> {
  const database = await createEmptyDatabase();
  const handle = await openDatabase({ url: database.url, dataDir: '.data/unused', poolMax: 5 });
  await migrateDatabase(handle);
  return {
    ...database,
    handle,
    async drop() {
      await handle.close();
      await database.drop();
    },
  };
}
