// `npm run provision:backfill`: enqueues provisioning for every verified user who is incomplete
// (e.g. after migrating users from the old system), in batches, with a progress bar on a terminal.
import { openDatabase } from '../db/client.ts';
import { migrateDatabase } from '../db/migrate.ts';
import { createBoss } from './boss.ts';
import { loadConfig } from './config.ts';
import { createLogger } from './logger.ts';
import { countIncompleteUsers, enqueueIncompleteUsers } from './reconcile.ts';

const config = loadConfig();
const log = createLogger({ level: config.LOG_LEVEL, name: 'backfill' });
const database = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR });
await migrateDatabase(database);
const boss = createBoss(database, config, log, { supervise: false });
await boss.start();

const started = Date.now();
const total = await countIncompleteUsers(database.db);
const bar = (done: number) => {
  const width = 30;
  const filled = total === 0 ? width : Math.min(width, Math.round((done / total) * width));
  process.stdout.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} users enqueued`);
};
const enqueued = await enqueueIncompleteUsers(database.db, boss, {
  batchSize: 500,
  onBatch: process.stdout.isTTY ? bar : undefined,
});
if (process.stdout.isTTY) process.stdout.write('\n');
console.log(
  `backfill: ${enqueued} incomplete verified users enqueued (${total} found at start) in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
    'users that already had a job waiting or running were not enqueued twice',
);
await boss.stop({ graceful: false });
await database.close();
