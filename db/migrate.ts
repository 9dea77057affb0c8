// Applies the committed drizzle migrations. Every process runs this at start; the advisory lock makes
// two processes starting together take turns, and the second finds nothing left to apply.
import { fileURLToPath } from 'node:url';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import type { DatabaseHandle } from './client.ts';
import { seedCurrencies } from './seed/currencies.ts';

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('./migrations', import.meta.url));

export async function migrateDatabase(handle: DatabaseHandle): Promise<void> {
  await handle.withExclusiveLock('schema-migrations', async (db) => {
    const config = { migrationsFolder: MIGRATIONS_FOLDER, migrationsSchema: 'drizzle' };
    if (handle.kind === 'pglite') {
      await migratePglite(db as Parameters<typeof migratePglite>[0], config);
    } else {
      await migratePg(db as Parameters<typeof migratePg>[0], config);
    }
    await seedCurrencies(db);
  });
}
