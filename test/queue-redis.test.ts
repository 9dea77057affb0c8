// Redis as an optional cache, with real Redis in its three states: present (stats served from the
// cache until it expires; the bull:tatum:counts hash mirrored), absent (REDIS_URL unset), down or
// wrong (stats from Postgres, one warning) and back again (the hash reappears).
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../jobs/config.ts';
import { QUEUES } from '../jobs/queues.ts';
import { COUNTS_KEY, createStatsCache, startCountsMirror, statsCacheKey, type StatsCache } from '../jobs/stats-cache.ts';
import { startWorker } from '../jobs/worker.ts';
import type { PgBoss } from 'pg-boss';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { eventually } from './helpers/outage.ts';
import { captureLogs, type CapturedLogs } from './helpers/logs.ts';
import { DEPOSIT_QUEUE, freePort, SEEDED_COUNTS, seedJobs, startOperationsApp, startQueues, startRedisServer, ADMIN_TOKEN } from './helpers/operations.ts';
import { trpcClient } from './helpers/trpc.ts';

const LOCAL_REDIS = 'redis://127.0.0.1:6379';

let database: TestDatabase & { handle: Awaited<ReturnType<typeof createTestDatabase>>['handle'] };
let boss: PgBoss;
const config = () => parseConfig({ DATABASE_URL: database.url });
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  database = await createTestDatabase();
  boss = await startQueues(database, config());
  await seedJobs(boss);
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await boss.stop({ graceful: false });
  await database.drop();
});

function cache(redisUrl: string | undefined, ttlMs: number, logs = captureLogs('debug')): { stats: StatsCache; logs: CapturedLogs } {
  const stats = createStatsCache(database.handle.db, { redisUrl, ttlMs, log: logs.log, cacheKey: statsCacheKey(config()) });
  cleanups.push(() => stats.close());
  return { stats, logs };
}

const warnings = (logs: CapturedLogs) => logs.lines().filter((l) => l.level === 40 && l.msg?.startsWith('Redis unavailable'));
const deposits = async (stats: StatsCache) => (await stats.read()).queues.find((q) => q.queueName === DEPOSIT_QUEUE)!;

describe('Redis present', () => {
  it('serves queue.stats from the cache until it expires, so a change in Postgres shows only afterwards', async () => {
    const app = await startOperationsApp({ REDIS_URL: LOCAL_REDIS, QUEUE_STATS_CACHE_MS: '600000' });
    cleanups.push(() => app.stop());
    const admin = trpcClient(app.url, ADMIN_TOKEN);
    // The first read may run before the connection is up; it is cached once Redis is ready.
    const first = await eventually(
      async () => {
        const stats = await admin.queue.stats.query();
        const again = await admin.queue.stats.query();
        return { stats, cached: again.capturedAt.getTime() === stats.capturedAt.getTime() };
      },
      (r) => r.cached,
    );
    expect(first.cached).toBe(true);
    await app.services.boss.send(QUEUES.emailSend, { seeded: true });
    const cached = await admin.queue.stats.query();
    expect(cached).toEqual(first.stats);

    // The key is the database's own: dropping it is what expiry does, and the new job shows.
    const redis = new Redis(LOCAL_REDIS);
    cleanups.push(() => redis.quit());
    expect(await redis.del(statsCacheKey(app.services.config))).toBe(1);
    const fresh = await admin.queue.stats.query();
    expect(fresh.queues.find((q) => q.queueName === QUEUES.emailSend)!.waiting).toBe(1);
    expect(app.logs.lines().filter((l) => l.level >= 40 && String(l.msg).includes('Redis'))).toEqual([]);
  });

  it('lets the cached value expire after QUEUE_STATS_CACHE_MS', async () => {
    const { stats } = cache(LOCAL_REDIS, 300);
    const first = await eventually(async () => {
      const a = await stats.read();
      const b = await stats.read();
      return { a, cached: a.capturedAt.getTime() === b.capturedAt.getTime() };
    }, (r) => r.cached);
    expect(first.cached).toBe(true);
    const later = await eventually(() => stats.read(), (s) => s.capturedAt.getTime() !== first.a.capturedAt.getTime());
    expect(later.capturedAt.getTime()).toBeGreaterThan(first.a.capturedAt.getTime());
  });

  it('mirrors the tatum counts into a Redis hash with Bull field names', async () => {
    const key = `${COUNTS_KEY}:test:${database.name}`; // the shared Redis: a key of this test's own
    const { stats, logs } = cache(LOCAL_REDIS, 0);
    const mirror = startCountsMirror(stats, logs.log, { intervalMs: 100, key });
    cleanups.push(() => mirror.stop());
    const redis = new Redis(LOCAL_REDIS);
    cleanups.push(async () => {
      await redis.del(key);
      await redis.quit();
    });
    const hash = await eventually(() => redis.hgetall(key), (h) => Object.keys(h).length > 0);
    const { queueName: _, retrying: __, deadLettered: ___, ...bull } = SEEDED_COUNTS;
    expect(hash).toEqual(Object.fromEntries(Object.entries(bull).map(([field, n]) => [field, String(n)])));
    expect(await redis.pttl(key)).toBeGreaterThan(0);
  });
});

describe('Redis absent', () => {
  it('reads straight from Postgres with REDIS_URL unset, silently, and mirrors nothing', async () => {
    const { stats, logs } = cache(undefined, 1000);
    expect(await deposits(stats)).toMatchObject(SEEDED_COUNTS);
    expect(await stats.mirrorCounts()).toBe(false);
    expect(logs.lines().filter((l) => l.level >= 40)).toEqual([]);
  });
});

describe('Redis down or wrong', () => {
  it('answers queue.stats from Postgres with nothing listening, warning once', async () => {
    const app = await startOperationsApp({ REDIS_URL: 'redis://127.0.0.1:1', QUEUE_STATS_CACHE_MS: '600000' });
    cleanups.push(() => app.stop());
    const admin = trpcClient(app.url, ADMIN_TOKEN);
    await eventually(async () => warnings(app.logs).length, (n) => n > 0);
    for (let i = 0; i < 5; i++) {
      const stats = await admin.queue.stats.query();
      expect(stats.group.failed).toBe(0); // this app's own fresh database
    }
    expect(warnings(app.logs)).toHaveLength(1);
  });

  it('answers from Postgres when the server at REDIS_URL is not Redis, warning once over many reconnects', async () => {
    const sockets = new Set<Socket>();
    const impostor: Server = createServer((socket) => {
      sockets.add(socket);
      socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    });
    impostor.listen(0, '127.0.0.1');
    await once(impostor, 'listening');
    cleanups.push(async () => {
      const closed = new Promise((resolve) => impostor.close(resolve));
      for (const socket of sockets) socket.destroy();
      await closed;
    });
    const { stats, logs } = cache(`redis://127.0.0.1:${(impostor.address() as { port: number }).port}`, 600_000);
    await eventually(async () => sockets.size, (n) => n >= 3);
    expect(sockets.size).toBeGreaterThanOrEqual(3);
    expect(await deposits(stats)).toMatchObject(SEEDED_COUNTS);
    expect(await stats.mirrorCounts()).toBe(false);
    expect(warnings(logs)).toHaveLength(1);
  });
});

describe('Redis returning', () => {
  it('mirrors again once Redis is back: the bull:tatum:counts hash reappears', async () => {
    const port = await freePort();
    let redis = await startRedisServer(port);
    cleanups.push(() => redis.stop());
    const { stats, logs } = cache(redis.url, 1000);
    const mirror = startCountsMirror(stats, logs.log, { intervalMs: 100 });
    cleanups.push(() => mirror.stop());
    const reader = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    reader.on('error', () => {});
    cleanups.push(async () => reader.disconnect());
    const counts = () => reader.hgetall(COUNTS_KEY).catch(() => ({}) as Record<string, string>);

    expect(await eventually(counts, (h) => h.waiting !== undefined)).toMatchObject({ waiting: '3', failed: '1' });

    await redis.stop();
    await eventually(async () => warnings(logs).length, (n) => n > 0);
    expect(await deposits(stats)).toMatchObject(SEEDED_COUNTS); // Postgres answers meanwhile

    redis = await startRedisServer(port); // empty: nothing was persisted
    const back = await eventually(counts, (h) => h.waiting !== undefined, 15_000);
    expect(back).toMatchObject({ waiting: '3', active: '1', completed: '1', failed: '1', delayed: '2' });
    expect(warnings(logs)).toHaveLength(1);
    expect(logs.lines().some((l) => l.msg?.startsWith('Redis available again'))).toBe(true);
  });

  it('is what a worker with REDIS_URL runs: its hash appears without anything else started', async () => {
    const redis = await startRedisServer(await freePort());
    cleanups.push(() => redis.stop());
    const logs = captureLogs('debug');
    const workerConfig = { ...parseConfig({ DATABASE_URL: database.url, REDIS_URL: redis.url }), ENCRYPTION_KEY: 'x'.repeat(32), TATUM_WEBHOOK_HMAC_SECRET: 'x'.repeat(32), ADMIN_TOKEN };
    const worker = await startWorker({ boss, db: database.handle.db, config: workerConfig, log: logs.log }, { queues: [] });
    cleanups.push(() => worker.stop(1000));
    const reader = new Redis(redis.url);
    cleanups.push(() => reader.quit());
    const hash = await eventually(() => reader.hgetall(COUNTS_KEY), (h) => h.waiting !== undefined, 15_000);
    expect(hash).toMatchObject({ waiting: '3', failed: '1' });
  });
});
