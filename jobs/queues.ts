// Queue names and the one place queues are created. The seed's Bull queue `tatum` with job
// `create-virtual-account` becomes the pg-boss queue `tatum.create-virtual-account`, so both names
// stay visible in SQL and dashboards; every queue of the `tatum` group starts with `tatum.`.
import type { PgBoss, Queue, QueuePolicy } from 'pg-boss';
import type { Config } from './config.ts';

export const QUEUE_GROUP = 'tatum';

export const QUEUES = {
  provision: 'tatum.create-virtual-account',
  provisionDead: 'tatum.create-virtual-account.dead',
  depositReceived: 'tatum.deposit-received',
  depositReceivedDead: 'tatum.deposit-received.dead',
  reconcile: 'tatum.reconcile',
  emailSend: 'email.send',
  emailSendDead: 'email.send.dead',
} as const;

export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

export interface ProvisionJob {
  userId: string;
}

/** The queues workers take jobs from, each with where its jobs go after the last attempt. */
export const WORK_QUEUES: ReadonlyArray<{ name: QueueName; deadLetter?: QueueName; expireInSeconds: number; policy?: QueuePolicy }> = [
  // `exclusive` with the user id as singletonKey: at most one provisioning job per user is waiting,
  // retrying or running, so verify, reconcile and backfill never pile up jobs for one user. A
  // provisioning run is a handful of rate-limited Tatum calls; ten minutes is far beyond a healthy one.
  { name: QUEUES.provision, deadLetter: QUEUES.provisionDead, expireInSeconds: 600, policy: 'exclusive' },
  { name: QUEUES.depositReceived, deadLetter: QUEUES.depositReceivedDead, expireInSeconds: 300 },
  // The next scheduled run replaces a failed reconcile, so it has no dead letter queue.
  { name: QUEUES.reconcile, expireInSeconds: 600 },
  { name: QUEUES.emailSend, deadLetter: QUEUES.emailSendDead, expireInSeconds: 120 },
];

/**
 * A worker proves it is alive this often (pg-boss refreshes at half the interval). A killed worker's
 * job is failed, and so retried, once the heartbeat is this old and the next monitor pass runs
 * (jobs/boss.ts runs one every 10 s): within 40 s, well inside a minute.
 */
export const HEARTBEAT_SECONDS = 30;

/** The retry policy every worked queue shares: the seed's "3 attempts, exponential backoff from 5 s". */
export function retryPolicy(config: Config): Pick<Queue, 'retryLimit' | 'retryDelay' | 'retryBackoff'> {
  return {
    retryLimit: config.QUEUE_ATTEMPTS - 1,
    // pg-boss counts retry delays in whole seconds; the config's minimum of 1000 ms keeps this >= 1.
    retryDelay: Math.max(1, Math.round(config.QUEUE_BACKOFF_MS / 1000)),
    retryBackoff: true,
  };
}

/**
 * Creates every queue, or brings an existing one in line with the current configuration. Dead letter
 * queues come first because a queue can only name one that exists. Idempotent, so every process
 * runs it at start.
 */
export async function createQueues(boss: PgBoss, config: Config): Promise<void> {
  for (const { deadLetter } of WORK_QUEUES) {
    if (deadLetter) await ensureQueue(boss, deadLetter, undefined, {});
  }
  for (const { name, deadLetter, expireInSeconds, policy } of WORK_QUEUES) {
    await ensureQueue(boss, name, policy, {
      ...retryPolicy(config),
      ...(deadLetter ? { deadLetter } : {}),
      expireInSeconds,
      heartbeatSeconds: HEARTBEAT_SECONDS,
      // A NOTIFY in the sending transaction wakes a worker the moment the job commits.
      notify: true,
    });
  }
  // The self-healing sweep (jobs/reconcile.ts); schedule() replaces an existing schedule, so a
  // changed RECONCILE_CRON takes effect at the next start.
  await boss.schedule(QUEUES.reconcile, config.RECONCILE_CRON);
}

async function ensureQueue(boss: PgBoss, name: QueueName, policy: QueuePolicy | undefined, options: Omit<Queue, 'name' | 'policy'>): Promise<void> {
  // Does nothing when the queue exists; the policy is fixed at creation, the options are not.
  await boss.createQueue(name, { ...options, ...(policy ? { policy } : {}) });
  if (Object.keys(options).length > 0) await boss.updateQueue(name, options);
}
