// `tsx jobs/run.ts [queue ...]` (npm run queue:work, queue:work:tatum): one worker process. `tatum`
// takes every `tatum.*` queue, no argument takes them all. SIGTERM/SIGINT stop taking jobs, let the
// active ones finish (bounded by STOP_TIMEOUT_MS, after which pg-boss fails them back for a retry)
// and exit 0.
import { openDatabase } from '../db/client.ts';
import { migrateDatabase } from '../db/migrate.ts';
import { createBoss } from './boss.ts';
import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './logger.ts';
import { recordTatumRequest, serveWorkerMetrics } from './metrics.ts';
import { prepareProvisioning } from './provision-user.ts';
import { createQueues, QUEUES } from './queues.ts';
import { resolveSecrets } from './secrets.ts';
import { resolveQueues, startWorker, STOP_TIMEOUT_MS } from './worker.ts';

try {
  const parsed = loadConfig();
  const log = createLogger({ level: parsed.LOG_LEVEL, name: 'worker' });
  if (parsed.database === 'pglite') {
    // The embedded database belongs to one process: `npm start` runs the worker inside the server.
    log.error('DATABASE_URL is not set: the embedded database has its worker inside `npm start`; a separate worker needs Postgres');
    process.exit(78);
  }
  const queues = resolveQueues(process.argv.slice(2)); // throws a message naming the known queues
  const config = resolveSecrets(parsed, log);
  const database = await openDatabase({
    url: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    poolMax: config.DATABASE_POOL_MAX,
    applicationName: 'tatum-provisioning-worker',
  });
  await migrateDatabase(database);
  const boss = createBoss(database, config, log);
  await boss.start();
  await createQueues(boss, config);
  const provisioning = queues.includes(QUEUES.provision)
    ? await prepareProvisioning(database, config, log, { onTatumRequest: recordTatumRequest })
    : undefined;
  const metrics = config.WORKER_METRICS_PORT ? await serveWorkerMetrics(config.WORKER_METRICS_PORT, config.HOST) : undefined;
  const worker = await startWorker({ boss, db: database.db, config, log, provisioning }, { queues });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: no new jobs, waiting for active ones');
    try {
      await worker.stop(STOP_TIMEOUT_MS);
      metrics?.close();
      // Whatever outlived the timeout is failed back to its queue, to be retried by another worker.
      await boss.stop({ graceful: true, timeout: 1000 });
      await database.close();
      process.exit(0);
    } catch (err) {
      log.error({ err }, 'stop failed');
      process.exit(1);
    }
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(78); // EX_CONFIG
  }
  throw err;
}
