// The worker runtime on real Postgres and pg-boss: pickup by NOTIFY, retries with the configured
// backoff, the dead letter queue, the per-process concurrency cap across queues, job-tagged logs.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { JobWithMetadata } from 'pg-boss';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bossDb, createBoss, type PgBoss } from '../jobs/boss.ts';
import { parseConfig } from '../jobs/config.ts';
import { QUEUES, createQueues } from '../jobs/queues.ts';
import { resolveSecrets, type RuntimeConfig } from '../jobs/secrets.ts';
import { resolveQueues, startWorker, WORKABLE_QUEUES, type JobHandler, type RunningWorker } from '../jobs/worker.ts';
import { createTestDatabase } from './helpers/database.ts';
import { captureLogs } from './helpers/logs.ts';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let dataDir: string;
let config: RuntimeConfig;
let boss: PgBoss;
let worker: RunningWorker | undefined;
const logs = captureLogs('info');
const { log } = logs;

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = mkdtempSync(path.join(tmpdir(), 'worker-'));
  const env = {
    DATABASE_URL: database.url,
    DATA_DIR: dataDir,
    QUEUE_ATTEMPTS: '3',
    QUEUE_BACKOFF_MS: '1000',
    QUEUE_CONCURRENCY: '2',
    QUEUE_MAX_JOBS: '1000',
    QUEUE_INTERVAL: '1000',
  };
  config = resolveSecrets(parseConfig(env), log);
  boss = createBoss(database.handle, config, log);
  await boss.start();
  await createQueues(boss, config);
});
afterEach(async () => {
  await worker?.stop(5000);
  worker = undefined;
});
afterAll(async () => {
  await boss.stop({ graceful: false });
  await database.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function until<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error('condition not met before the deadline');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Sends a provisioning job the way auth.verify does: inside a transaction, visible at commit. */
async function sendInTransaction(userId = randomUUID()): Promise<{ jobId: string; committedAt: number }> {
  const jobId = await database.handle.db.transaction((tx) => boss.send(QUEUES.provision, { userId }, { db: bossDb(tx), singletonKey: userId }));
  return { jobId: jobId!, committedAt: performance.now() };
}

describe('resolveQueues', () => {
  it('maps no argument to every queue, `tatum` to the tatum.* queues, and refuses unknown names', () => {
    const tatum = WORKABLE_QUEUES.filter((name) => name.startsWith('tatum.'));
    expect(resolveQueues([])).toEqual(WORKABLE_QUEUES);
    expect(WORKABLE_QUEUES).toEqual(expect.arrayContaining([QUEUES.provision, QUEUES.emailSend]));
    expect(resolveQueues(['tatum'])).toEqual(tatum);
    expect(tatum).toContain(QUEUES.provision);
    expect(resolveQueues([QUEUES.emailSend, 'tatum', QUEUES.emailSend])).toEqual([QUEUES.emailSend, ...tatum]);
    // Dead letter queues hold what failed for good; no worker takes from them.
    expect(WORKABLE_QUEUES.filter((name) => name.endsWith('.dead'))).toEqual([]);
    expect(() => resolveQueues(['bull'])).toThrow(/unknown queue "bull"/);
  });
});

describe('the worker', () => {
  it('picks a committed job up through NOTIFY (polling set to 5 minutes)', async () => {
    const started = new Map<string, number>();
    worker = await startWorker(
      { boss, db: database.handle.db, config, log },
      {
        queues: [QUEUES.provision],
        handlers: { [QUEUES.provision]: async (job) => void started.set(job.id, performance.now()) },
        pollingIntervalSeconds: 300,
      },
    );
    const pickups: number[] = [];
    for (let i = 0; i < 15; i++) {
      const { jobId, committedAt } = await sendInTransaction();
      const startedAt = await until(() => started.get(jobId), 10_000);
      pickups.push(Math.max(0, startedAt - committedAt));
    }
    pickups.sort((a, b) => a - b);
    console.info(`pickup after commit (ms): p50 ${pickups[7]!.toFixed(1)}, max ${pickups.at(-1)!.toFixed(1)}`);
    // Polling alone would take up to 300 s: every pickup here came from the NOTIFY sent at commit.
    expect(pickups.at(-1)!).toBeLessThan(10_000);
    // The bound; the median keeps one scheduling hiccup on a shared machine from deciding it.
    expect(pickups[7]!).toBeLessThan(100);
  });

  it('retries with exponential backoff from QUEUE_BACKOFF_MS, then dead-letters after the last attempt', async () => {
    const attempts: Array<{ retryCount: number; startAfter: number; failedAt: number }> = [];
    const failing: JobHandler = async (job: JobWithMetadata<unknown>) => {
      attempts.push({ retryCount: job.retryCount, startAfter: job.startAfter.getTime(), failedAt: Date.now() });
      throw new Error(`attempt ${job.retryCount + 1} fails`);
    };
    worker = await startWorker({ boss, db: database.handle.db, config, log }, { queues: [QUEUES.provision], handlers: { [QUEUES.provision]: failing } });
    const userId = randomUUID();
    const { jobId } = await sendInTransaction(userId);

    const dead = await until(async () => {
      const { rows } = await database.query(`select id, data, source_id from pgboss.job where name = $1 and data->>'userId' = $2`, [QUEUES.provisionDead, userId]);
      return rows[0];
    });
    expect(dead).toMatchObject({ data: { userId }, source_id: jobId });

    expect(attempts.map((a) => a.retryCount)).toEqual([0, 1, 2]);
    // pg-boss schedules retry n (n = 1, 2) between delay * 2^(n-1) and delay * 2^n after the failure.
    for (const n of [1, 2]) {
      const wait = attempts[n]!.startAfter - attempts[n - 1]!.failedAt;
      expect(wait).toBeGreaterThanOrEqual(1000 * 2 ** (n - 1) - 50);
      expect(wait).toBeLessThanOrEqual(1000 * 2 ** n + 50);
      expect(attempts[n]!.failedAt - attempts[n - 1]!.failedAt).toBeGreaterThanOrEqual(1000 * 2 ** (n - 1) - 50);
    }
    const { rows } = await database.query(`select state, retry_count, retry_limit, retry_delay, retry_backoff from pgboss.job where id = $1`, [jobId]);
    expect(rows[0]).toEqual({ state: 'failed', retry_count: 2, retry_limit: 2, retry_delay: 1, retry_backoff: true });
  });

  it('runs at most QUEUE_CONCURRENCY jobs at once in the process, whatever the number of queues', async () => {
    let running = 0;
    let most = 0;
    let done = 0;
    const busy: JobHandler = async () => {
      running += 1;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 100)); // the work itself
      running -= 1;
      done += 1;
    };
    worker = await startWorker(
      { boss, db: database.handle.db, config, log },
      { queues: [QUEUES.provision, QUEUES.emailSend], handlers: { [QUEUES.provision]: busy, [QUEUES.emailSend]: busy } },
    );
    for (let i = 0; i < 4; i++) {
      await sendInTransaction();
      await boss.send(QUEUES.emailSend, { i });
    }
    await until(() => done === 8);
    expect(most).toBe(config.QUEUE_CONCURRENCY);
  });

  it('tags every log line of a job with its id and queue', async () => {
    worker = await startWorker(
      { boss, db: database.handle.db, config, log },
      { queues: [QUEUES.provision], handlers: { [QUEUES.provision]: async (_job, jobLog) => jobLog.info('inside the handler') } },
    );
    const { jobId } = await sendInTransaction();
    await until(() => logs.lines().some((l) => l.msg === 'job completed' && l.jobId === jobId));
    const lines = logs.lines().filter((l) => l.jobId === jobId);
    expect(lines.map((l) => l.msg)).toEqual(['job started', 'inside the handler', 'job completed']);
    expect(lines.every((l) => l.queue === QUEUES.provision)).toBe(true);
  });
});
