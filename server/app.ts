// Assembles one server process: configuration → database (migrated) → pg-boss → HTTP. In embedded
// mode (no DATABASE_URL) the job worker runs in this same process, since PGlite cannot be shared.
import type { AddressInfo } from 'node:net';
import { openDatabase } from '../db/client.ts';
import { migrateDatabase } from '../db/migrate.ts';
import { createBoss } from '../jobs/boss.ts';
import { createQueues } from '../jobs/queues.ts';
import { prepareProvisioning } from '../jobs/provision-user.ts';
import { startSandbox, type Sandbox } from '../jobs/tatum/sandbox/server.ts';
import { resolveQueues, startWorker, type RunningWorker } from '../jobs/worker.ts';
import { WEBHOOK_PATH, type Config } from '../jobs/config.ts';
import type { Logger } from '../jobs/logger.ts';
import { resolveSecrets } from '../jobs/secrets.ts';
import { createMetricsRegistry, recordTatumRequest } from '../jobs/metrics.ts';
import { createStatsCache, statsCacheKey } from '../jobs/stats-cache.ts';
import { createHttpServer } from './http.ts';
import { observabilityRoutes } from './observability.ts';
import type { AppServices } from './trpc.ts';
import { tatumWebhookRoute } from './webhooks.ts';

export interface RunningApp {
  url: string;
  services: AppServices;
  close(): Promise<void>;
}

export async function startApp(parsed: Config, log: Logger): Promise<RunningApp> {
  const config = resolveSecrets(parsed, log);
  const database = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolMax: config.DATABASE_POOL_MAX });
  await migrateDatabase(database);
  const boss = createBoss(database, config, log);
  await boss.start();
  await createQueues(boss, config);

  const stats = createStatsCache(database.db, { redisUrl: config.REDIS_URL, ttlMs: config.QUEUE_STATS_CACHE_MS, log, cacheKey: statsCacheKey(config) });
  const services: AppServices = { config, db: database.db, boss, log, stats };
  const server = createHttpServer(services, {
    [`POST ${WEBHOOK_PATH}`]: tatumWebhookRoute(services),
    ...observabilityRoutes({ db: database.db, boss }, createMetricsRegistry(() => stats.read())),
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.PORT, config.HOST, resolve);
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${config.HOST}:${port}`;
  log.info({ url, database: database.kind, mode: config.mode }, 'server listening');

  // PGlite cannot be shared with a worker process, so the embedded server works every queue itself,
  // against a sandbox of its own unless TATUM_BASE_URL names one.
  let sandbox: Sandbox | undefined;
  let worker: RunningWorker | undefined;
  if (config.database === 'pglite') {
    if (config.mode === 'sandbox' && config.TATUM_BASE_URL === undefined) {
      sandbox = await startSandbox({ port: 0 });
      log.info({ url: sandbox.url }, 'embedded Tatum sandbox listening');
    }
    const provisioning = await prepareProvisioning(database, config, log, {
      sandboxUrl: sandbox?.url,
      webhookUrl: `${url}${WEBHOOK_PATH}`,
      onTatumRequest: recordTatumRequest,
    });
    worker = await startWorker({ ...services, provisioning }, { queues: resolveQueues([]) });
  }

  return {
    url,
    services,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await worker?.stop(10_000);
      await sandbox?.close();
      await boss.stop({ graceful: true, timeout: 10_000 });
      await stats.close();
      await database.close();
    },
  };
}
