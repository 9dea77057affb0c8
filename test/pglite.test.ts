// The embedded default (no DATABASE_URL): the same migrations on PGlite, and pg-boss on the same
// PGlite instance, so `npm start` on a bare machine cannot rot unnoticed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, queryRows, type DatabaseHandle } from '../db/client.ts';
import { migrateDatabase } from '../db/migrate.ts';
import { createBoss } from '../jobs/boss.ts';
import { parseConfig } from '../jobs/config.ts';
import { createLogger } from '../jobs/logger.ts';

const dataDir = mkdtempSync(path.join(tmpdir(), 'pglite-'));
let handle: DatabaseHandle;

beforeAll(async () => {
  handle = await openDatabase({ dataDir });
  await migrateDatabase(handle);
});
afterAll(async () => {
  await handle.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('embedded PGlite', () => {
  it('runs the committed migrations and the seed', async () => {
    expect(handle.kind).toBe('pglite');
    expect(await queryRows(handle.db, sql`select count(*)::int as n from wallet_currencies`)).toEqual([{ n: 9 }]);
  });

  it('enforces the same constraints', async () => {
    await handle.db.execute(sql`insert into users (email) values ('x@example.com')`);
    await expect(handle.db.execute(sql`insert into users (email) values ('x@example.com')`)).rejects.toMatchObject({
      cause: { message: expect.stringMatching(/users_email_unique/) },
    });
  });

  it('persists across a reopen of the data directory', async () => {
    await handle.close();
    handle = await openDatabase({ dataDir });
    await migrateDatabase(handle);
    expect(await queryRows(handle.db, sql`select email from users`)).toEqual([{ email: 'x@example.com' }]);
  });

  it('hosts pg-boss: a job sent in a transaction is fetched from the same database', async () => {
    const boss = createBoss(handle, parseConfig({}), createLogger({ level: 'silent' }));
    await boss.start();
    try {
      await boss.createQueue('embedded-check');
      const id = await boss.send('embedded-check', { hello: 'pglite' });
      const [job] = await boss.fetch<{ hello: string }>('embedded-check');
      expect(job?.id).toBe(id);
      expect(job?.data).toEqual({ hello: 'pglite' });
    } finally {
      await boss.stop({ graceful: false });
    }
  });
});
