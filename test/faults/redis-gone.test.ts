// Redis gone: the server and workers run with REDIS_URL (a redis-server this test starts), under a
// steady mix of requests: verifies, wallet reads with the new sessions, operators polling
// queue.stats. Redis is killed mid-run and later started again on the same port. Not one request
// fails; queue.stats keeps answering with fresh counts from Postgres while Redis is away; once it
// is back, the stats cache and the seed's `bull:tatum:counts` hash are in Redis again.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COUNTS_KEY, statsCacheKey } from '../../jobs/stats-cache.ts';
import { freePort, startRedisServer, type RedisServer } from '../helpers/operations.ts';
import { call, enabledCurrencies, readyAccounts, seedUnverifiedUsers, startStack, verifyRequest, waitUntil, type Answer, type Stack } from './stack.ts';

const USERS = 40;
const UP_MS = 5000;
const DOWN_MS = 10_000;
const STATS_POLLERS = 3;

let redisPort: number;
let redis: RedisServer;
let stack: Stack;

beforeAll(async () => {
  redisPort = await freePort();
  redis = await startRedisServer(redisPort);
  stack = await startStack({ scenario: 'redis-gone', env: { REDIS_URL: redis.url } });
});
afterAll(async () => {
  await stack?.stop();
  await redis?.stop();
});

/** What Redis holds under `key` now (a hash's fields, a string's value), or undefined if it is unreachable. */
async function redisHolds(key: string): Promise<boolean | undefined> {
  const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.exists(key)) === 1;
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

type Phase = 'up' | 'down' | 'back';

interface Served extends Answer {
  phase: Phase;
  route: string;
}

describe('Redis stopped mid-run and started again', () => {
  it('fails no request, and queue.stats answers from Postgres while Redis is away', async () => {
    const emails = await seedUnverifiedUsers(stack, 'redis', USERS);
    const statsKey = statsCacheKey({ DATABASE_URL: stack.database.url, DATA_DIR: '' });
    const served: Served[] = [];
    let phase: Phase = 'up';
    let running = true;
    const sessions: string[] = [];

    // Steady load, paced so the machine's two cores are not what is measured.
    const lane = async (route: string, send: () => Promise<Answer | undefined>, pauseMs: number) => {
      while (running) {
        const answer = await send();
        if (answer) served.push({ ...answer, phase, route });
        await sleep(pauseMs);
      }
    };
    let nextUser = 0;
    const verifier = lane(
      'auth.verify',
      async () => {
        const email = emails[nextUser++];
        if (email === undefined) return undefined;
        const answer = await verifyRequest(stack, email);
        if (answer.status === 200) sessions.push(JSON.parse(answer.body).result.data.json.sessionToken);
        return answer;
      },
      400,
    );
    const walletReader = lane(
      'wallet.accounts',
      async () => {
        const token = sessions[Math.floor(Math.random() * sessions.length)];
        return token === undefined ? undefined : call(`${stack.server.url}/trpc/wallet.accounts`, { headers: { authorization: `Bearer ${token}` } });
      },
      100,
    );
    const statsPollers = Array.from({ length: STATS_POLLERS }, () =>
      lane('queue.stats', () => call(`${stack.server.url}/trpc/queue.stats`, { headers: stack.adminHeaders }), 100),
    );

    await sleep(UP_MS);
    // Both uses of Redis were live before it went away.
    expect(await redisHolds(statsKey)).toBe(true);
    await waitUntil('bull:tatum:counts mirrored', () => redisHolds(COUNTS_KEY), (held) => held === true, 15_000);

    await redis.stop();
    phase = 'down';
    expect(await redisHolds(COUNTS_KEY)).toBeUndefined();
    await sleep(DOWN_MS);

    redis = await startRedisServer(redisPort);
    phase = 'back';
    // A fresh Redis is empty: the server caches stats again, a worker mirrors the counts again.
    await waitUntil('stats cached in Redis again', () => redisHolds(statsKey), (held) => held === true, 15_000);
    await waitUntil('bull:tatum:counts mirrored again', () => redisHolds(COUNTS_KEY), (held) => held === true, 15_000);
    running = false;
    await Promise.all([verifier, walletReader, ...statsPollers]);

    expect(served.filter((a) => a.status !== 200)).toEqual([]);
    const statsWhileDown = served.filter((a) => a.phase === 'down' && a.route === 'queue.stats');
    expect(statsWhileDown.length).toBeGreaterThan(10);
    // Counted afresh from Postgres while Redis was away, not one stale copy served over and over.
    const capturedAt = new Set(statsWhileDown.map((a) => JSON.parse(a.body).result.data.json.capturedAt));
    expect(capturedAt.size).toBeGreaterThan(1);
    expect(served.filter((a) => a.phase === 'down' && a.route !== 'queue.stats').length).toBeGreaterThan(0);
    for (const p of [stack.server, ...stack.workers]) expect(p.child.exitCode).toBeNull();
    // One warning for the outage and one line for the recovery, not one per request.
    const serverLog = readFileSync(path.join(stack.logDir, 'server.log'), 'utf8');
    expect(serverLog.match(/"msg":"Redis unavailable/g)).toHaveLength(1);
    expect(serverLog.match(/"msg":"Redis available again/g)).toHaveLength(1);

    const verified = served.filter((a) => a.route === 'auth.verify').length;
    const currencies = await enabledCurrencies(stack);
    await waitUntil('verified users provisioned', () => readyAccounts(stack), (n) => n === verified * currencies, 60_000);

    const slowest = (p: Phase) => Math.max(0, ...served.filter((a) => a.phase === p).map((a) => a.ms));
    const byPhase = (p: Phase) => served.filter((a) => a.phase === p).length;
    console.info(
      `Redis gone: ${served.length} requests (${byPhase('up')} with Redis, ${byPhase('down')} during ${DOWN_MS / 1000} s without, ${byPhase('back')} after), 0 failed; ` +
        `${statsWhileDown.length} queue.stats answers without Redis (${capturedAt.size} distinct counts); slowest answer with / without / after: ` +
        `${slowest('up').toFixed(0)} / ${slowest('down').toFixed(0)} / ${slowest('back').toFixed(0)} ms; ${verified} users verified and provisioned`,
    );
  });
});
