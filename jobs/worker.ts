// A worker: takes jobs from the chosen queues and runs their handlers, at most QUEUE_CONCURRENCY at
// once in this process whatever the number of queues, each start admitted by the cross-process
// limiter. Every log line of a job carries its id and queue.
import type { JobWithMetadata, PgBoss } from 'pg-boss';
import type { Database } from '../db/client.ts';
import { receiveDeposit } from './deposits.ts';
import { createLimiter, type Limiter } from './limiter.ts';
import type { Logger } from './logger.ts';
import { createTransport, sendEmail } from './mailer.ts';
import { recordJobDuration } from './metrics.ts';
import { provisionUser, type ProvisionDeps } from './provision-user.ts';
import { enqueueIncompleteUsers } from './reconcile.ts';
import { QUEUE_GROUP, QUEUES, WORK_QUEUES, type ProvisionJob } from './queues.ts';
import type { RuntimeConfig } from './secrets.ts';
import { createStatsCache, startCountsMirror, statsCacheKey } from './stats-cache.ts';

export interface WorkerDeps {
  boss: PgBoss;
  db: Database;
  config: RuntimeConfig;
  log: Logger;
  /** Needed only by a worker that takes the provisioning queue (see createProvisionDeps). */
  provisioning?: Omit<ProvisionDeps, 'log'>;
}

/** Runs one job; throwing fails the attempt, and pg-boss retries it per the queue's policy. */
export type JobHandler = (job: JobWithMetadata<unknown>, log: Logger) => Promise<unknown>;

/**
 * The handler of each queue, built only when a worker takes that queue (so a worker for `tatum`
 * needs no mail transport). A queue without an entry here has no worker yet.
 */
const HANDLERS: Partial<Record<string, (deps: WorkerDeps) => JobHandler>> = {
  [QUEUES.provision]: ({ provisioning }) => {
    if (!provisioning) throw new Error('a worker for the provisioning queue needs its Tatum client and vault (createProvisionDeps)');
    return (job, log) => provisionUser({ ...provisioning, log }, job.data as ProvisionJob, { isLast: job.retryCount >= job.retryLimit });
  },
  [QUEUES.reconcile]: ({ db, boss }) => async (_job, log) => {
    const enqueued = await enqueueIncompleteUsers(db, boss);
    log.info({ enqueued }, 'reconcile: incomplete users enqueued');
    return { enqueued };
  },
  [QUEUES.depositReceived]: ({ db }) => (job, log) => receiveDeposit({ db }, job, log),
  [QUEUES.emailSend]: ({ config }) => {
    const transport = createTransport(config);
    return (job, log) => sendEmail(config, transport, job.data, log);
  },
};

/** Queues with a handler, in creation order. */
export const WORKABLE_QUEUES: string[] = WORK_QUEUES.map((q) => q.name).filter((name) => HANDLERS[name]);

/**
 * Which queues a worker takes: every workable queue when none is named; `tatum` for every queue of
 * that group (the seed's `npm run queue:work:tatum`); otherwise the queues named.
 */
export function resolveQueues(args: readonly string[]): string[] {
  if (args.length === 0) return WORKABLE_QUEUES;
  const chosen = args.flatMap((arg) => {
    if (arg === QUEUE_GROUP) return WORKABLE_QUEUES.filter((name) => name.startsWith(`${QUEUE_GROUP}.`));
    if (WORKABLE_QUEUES.includes(arg)) return [arg];
    throw new Error(`unknown queue "${arg}"; known: ${QUEUE_GROUP}, ${WORKABLE_QUEUES.join(', ')}`);
  });
  return [...new Set(chosen)];
}

export interface WorkerOptions {
  queues: readonly string[];
  /** Replaces the built-in handlers (tests and benchmarks record what ran). */
  handlers?: Record<string, JobHandler>;
  /**
   * Polling backstop, in seconds. NOTIFY wakes a worker for a new job; polling is what finds a retry
   * whose backoff has ended (pg-boss sends no NOTIFY for future-dated jobs), so it stays short.
   */
  pollingIntervalSeconds?: number;
}

export interface RunningWorker {
  queues: string[];
  /** Stops taking jobs and waits for the active ones, at most `timeoutMs`; returns how many were left running. */
  stop(timeoutMs?: number): Promise<number>;
}

export const STOP_TIMEOUT_MS = 30_000;

export async function startWorker(deps: WorkerDeps, options: WorkerOptions): Promise<RunningWorker> {
  const { boss, config, log } = deps;
  const slots = new Semaphore(config.QUEUE_CONCURRENCY);
  const active = new Set<Promise<unknown>>();
  const limiters = new Map<string, Limiter>();
  // One budget per queue group, as the seed's one Bull queue `tatum` had one limiter.
  const limiterOf = (queue: string) => {
    const group = queue.split('.')[0]!;
    let limiter = limiters.get(group);
    if (!limiter) {
      limiter = createLimiter(deps.db, { name: `jobs:${group}`, maxJobs: config.QUEUE_MAX_JOBS, intervalMs: config.QUEUE_INTERVAL });
      limiters.set(group, limiter);
    }
    return limiter;
  };

  const run = async (queue: string, handler: JobHandler, job: JobWithMetadata<unknown>) => {
    const jobLog = log.child({ jobId: job.id, queue });
    const release = await slots.acquire();
    try {
      await limiterOf(queue).acquire();
      const attempt = job.retryCount + 1;
      jobLog.info({ attempt, attempts: job.retryLimit + 1 }, 'job started');
      const started = performance.now();
      try {
        await handler(job, jobLog);
      } catch (err) {
        recordJobDuration(queue, 'failed', performance.now() - started);
        jobLog.warn({ err, attempt, final: job.retryCount >= job.retryLimit }, 'job failed');
        throw err;
      }
      recordJobDuration(queue, 'completed', performance.now() - started);
      jobLog.info({ ms: Math.round(performance.now() - started) }, 'job completed');
    } finally {
      release();
    }
  };

  const queues = [...options.queues];
  for (const queue of queues) {
    const handler = options.handlers?.[queue] ?? HANDLERS[queue]?.(deps);
    if (!handler) throw new Error(`no handler for queue ${queue}`);
    const polling = options.pollingIntervalSeconds ?? 1;
    await boss.work(
      queue,
      {
        // One work() per queue, with this process's whole concurrency: the semaphore above caps the
        // total, so adding queues never multiplies it (pitfall #17).
        localConcurrency: config.QUEUE_CONCURRENCY,
        batchSize: 1,
        includeMetadata: true,
        pollingIntervalSeconds: polling,
        notifyPollingIntervalSeconds: polling,
      },
      async ([job]) => {
        const running = run(queue, handler, job!);
        active.add(running);
        try {
          return await running;
        } finally {
          active.delete(running);
        }
      },
    );
  }
  // With Redis configured, workers keep the seed's `bull:tatum:counts` hash current (jobs/stats-cache.ts).
  const stats = config.REDIS_URL
    ? createStatsCache(deps.db, { redisUrl: config.REDIS_URL, ttlMs: config.QUEUE_STATS_CACHE_MS, log, cacheKey: statsCacheKey(config) })
    : undefined;
  const mirror = stats && startCountsMirror(stats, log);
  log.info({ queues, concurrency: config.QUEUE_CONCURRENCY, limit: `${config.QUEUE_MAX_JOBS}/${config.QUEUE_INTERVAL}ms` }, 'worker started');

  return {
    queues,
    async stop(timeoutMs = STOP_TIMEOUT_MS) {
      await Promise.all(queues.map((queue) => boss.offWork(queue, { wait: false })));
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      });
      await Promise.race([Promise.allSettled([...active]), timedOut]);
      clearTimeout(timer);
      await mirror?.stop();
      await stats?.close();
      log.info({ unfinished: active.size }, 'worker stopped');
      return active.size;
    },
  };
}

/** Counts running jobs; a job that finds every slot taken waits for one. */
class Semaphore {
  private readonly waiting: Array<() => void> = [];
  private free: number;

  constructor(size: number) {
    this.free = size;
  }

  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free -= 1;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free += 1;
    };
  }
}
