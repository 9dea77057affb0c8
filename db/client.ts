// The database handle every process uses: a `pg` pool when DATABASE_URL is set, otherwise an
// embedded PGlite persisted on disk so `npm start` works on a machine with no database at all.
// pg-boss runs on the same database in both cases; `bossConnection` says how it gets there.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { ExtractTablesWithRelations, SQL } from 'drizzle-orm';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import pg from 'pg';
import { fromPglite, type ConstructorOptions } from 'pg-boss';
import * as schema from './schema.ts';

export type Schema = typeof schema;
export type Database = PgDatabase<PgQueryResultHKT, Schema>;
export type Transaction = PgTransaction<PgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>;
/** Either the database or an open transaction on it: functions that write take this. */
export type Executor = Database | Transaction;

/**
 * Runs raw SQL and returns its rows. For statements whose guarantee lives in the SQL itself
 * (row locks, `returning`, conflict handling), where spelling it out beats the query builder.
 */
export async function queryRows<Row>(db: Executor, query: SQL): Promise<Row[]> {
  const result = (await db.execute(query)) as unknown as { rows: Row[] };
  return result.rows;
}

export interface DatabaseHandle {
  db: Database;
  kind: 'postgres' | 'pglite';
  /** pg-boss constructor options that put pg-boss on this same database. */
  bossConnection: ConstructorOptions;
  /**
   * Runs `fn` while holding a lock named `key` that every process contends for (migrations, one
   * user's provisioning). The lock dies with its holder's connection, so a killed process frees it.
   */
  withExclusiveLock<T>(key: string, fn: (db: Database) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url?: string;
  dataDir: string;
  poolMax?: number;
  applicationName?: string;
}

export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  return options.url ? openPostgres(options.url, options) : openPglite(options.dataDir);
}

function openPostgres(url: string, options: DatabaseOptions): DatabaseHandle {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolMax ?? 10,
    application_name: options.applicationName ?? 'tatum-provisioning',
    connectionTimeoutMillis: 5000,
  });
  // A connection dropped by the server (restart, failover) must not crash the process: an idle one
  // reports on the pool, a checked-out one on its client, where the query in flight fails anyway.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  const db: Database = drizzlePg(pool, { schema });
  return {
    db,
    kind: 'postgres',
    bossConnection: { connectionString: url, application_name: options.applicationName ?? 'tatum-provisioning' },
    async withExclusiveLock(key, fn) {
      // A connection of its own, outside the pool: holders wait here without starving the pool
      // that the work inside `fn` needs.
      const client = new pg.Client({ connectionString: url, application_name: 'tatum-provisioning lock' });
      client.on('error', () => {});
      await client.connect();
      try {
        await client.query('select pg_advisory_lock(hashtextextended($1, 0))', [key]);
        return await fn(db);
      } finally {
        await client.end(); // ending the session releases the lock
      }
    },
    close: () => pool.end(),
  };
}

const heldLocks = new Map<string, Promise<unknown>>();

async function inProcessLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = heldLocks.get(key) ?? Promise.resolve();
  const run = previous.catch(() => {}).then(fn);
  const tail = run.catch(() => {});
  heldLocks.set(key, tail);
  try {
    return await run;
  } finally {
    if (heldLocks.get(key) === tail) heldLocks.delete(key);
  }
}

async function openPglite(dataDir: string): Promise<DatabaseHandle> {
  const dir = path.resolve(dataDir, 'pglite');
  mkdirSync(dir, { recursive: true });
  const pglite = await PGlite.create(dir);
  const db: Database = drizzlePglite(pglite, { schema });
  return {
    db,
    kind: 'pglite',
    bossConnection: { backend: 'pglite', db: fromPglite(pglite) },
    // PGlite belongs to this one process, so an in-process lock excludes every other holder.
    withExclusiveLock: (key, fn) => inProcessLock(key, () => fn(db)),
    close: () => pglite.close(),
  };
}
