// Redis as a compatibility cache, never a dependency. With REDIS_URL set, queue stats are shared
// between processes for QUEUE_STATS_CACHE_MS (a hundred dashboards polling cost Postgres one count
// per period), and workers mirror the `tatum` counts into the hash the seed's operators read with
// `redis-cli HGETALL bull:tatum:counts`. Without Redis, or while it is down or answering nonsense,
// every read goes to Postgres: one warning per outage, one info line when it is back.
import { Redis } from 'ioredis';
import type { Executor } from '../db/client.ts';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import { readQueueStats, type QueueStats } from './queue-stats.ts';

/** The seed's Bull key, kept so `redis-cli HGETALL bull:tatum:counts` still answers. */
export const COUNTS_KEY = 'bull:tatum:counts';

export const MIRROR_INTERVAL_MS = 5000;

/** Bull's fields, in Bull's order. */
const MIRRORED_FIELDS = ['waiting', 'active', 'completed', 'failed', 'delayed'] as const;

export interface StatsCacheOptions {
  redisUrl?: string;
  ttlMs: number;
  log: Logger;
  /** Where the cached stats live in Redis; one database's stats must never answer for another's. */
  cacheKey: string;
}

export interface StatsCache {
  /** Queue stats at most `ttlMs` old: Redis's copy when it has one, else counted in Postgres. */
  read(): Promise<QueueStats>;
  /** Writes the `tatum` group's counts to the hash `key`; false when Redis is unavailable. */
  mirrorCounts(key?: string): Promise<boolean>;
  close(): Promise<void>;
}

/** The cache key for one database: its host and name, or the embedded database's directory. */
export function statsCacheKey(config: Pick<Config, 'DATABASE_URL' | 'DATA_DIR'>): string {
  if (config.DATABASE_URL === undefined) return `tatum-provisioning:queue-stats:pglite:${config.DATA_DIR}`;
  const { host, pathname } = new URL(config.DATABASE_URL); // never the credentials
  return `tatum-provisioning:queue-stats:${host}${pathname}`;
}

export function createStatsCache(db: Executor, options: StatsCacheOptions): StatsCache {
  const redis = options.redisUrl ? connectRedis(options.redisUrl, options.log) : undefined;
  // Concurrent readers in this process share one count rather than each running their own.
  let counting: Promise<QueueStats> | undefined;
  const count = () => {
    counting ??= readQueueStats(db).finally(() => {
      counting = undefined;
    });
    return counting;
  };

  return {
    async read() {
      if (!redis || options.ttlMs === 0) return count();
      const cached = await redis.run((client) => client.get(options.cacheKey));
      if (cached) return parseStats(cached);
      const stats = await count();
      await redis.run((client) => client.set(options.cacheKey, JSON.stringify(stats), 'PX', options.ttlMs));
      return stats;
    },
    async mirrorCounts(key = COUNTS_KEY) {
      if (!redis?.ready()) return false;
      const { group } = await this.read();
      // One MULTI, so a reader never sees half an update; the expiry makes the hash vanish rather
      // than lie once no worker refreshes it.
      const written = await redis.run((client) =>
        client
          .multi()
          .hset(key, Object.fromEntries(MIRRORED_FIELDS.map((field) => [field, group[field]])))
          .pexpire(key, MIRROR_INTERVAL_MS * 6)
          .exec(),
      );
      return written !== undefined;
    },
    async close() {
      await redis?.close();
    },
  };
}

/** Refreshes the counts hash every `intervalMs` until stopped. */
export function startCountsMirror(cache: StatsCache, log: Logger, options: { intervalMs?: number; key?: string } = {}): { stop(): Promise<void> } {
  let pass: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    pass = cache.mirrorCounts(options.key).catch((err: unknown) => log.warn({ err }, 'queue counts mirror: counting failed'));
  }, options.intervalMs ?? MIRROR_INTERVAL_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await pass;
    },
  };
}

function parseStats(text: string): QueueStats {
  const parsed = JSON.parse(text) as QueueStats & { capturedAt: string };
  return { ...parsed, capturedAt: new Date(parsed.capturedAt) };
}

interface RedisLink {
  /** The command's answer, or undefined when Redis is unavailable (noted, never thrown). */
  run<T>(command: (client: Redis) => Promise<T>): Promise<T | undefined>;
  ready(): boolean;
  close(): Promise<void>;
}

/**
 * A Redis client that can never stall or fail a caller: no offline queue (a command while
 * disconnected fails at once), no retries per command, short timeouts. It reconnects in the
 * background forever (ioredis's default backoff, at most 2 s apart), which is how it recovers.
 */
function connectRedis(url: string, log: Logger): RedisLink {
  const client = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
    commandTimeout: 250,
  });
  let healthy = true;
  const unavailable = (err: unknown) => {
    if (!healthy) return;
    healthy = false;
    // The URL may carry a password: name the problem, never the URL.
    log.warn({ err: err instanceof Error ? err.message : String(err) }, 'Redis unavailable: queue stats come from Postgres until it returns');
  };
  const available = () => {
    if (healthy) return;
    healthy = true;
    log.info('Redis available again: queue stats cache and counts mirror resumed');
  };
  client.on('error', unavailable);
  client.on('ready', available);
  client.connect().catch(() => {}); // failures arrive as 'error' events; reconnection continues

  return {
    async run(command) {
      if (client.status !== 'ready') return undefined;
      try {
        const result = await command(client);
        available();
        return result;
      } catch (err) {
        unavailable(err);
        return undefined;
      }
    },
    ready: () => client.status === 'ready',
    async close() {
      client.disconnect();
    },
  };
}
