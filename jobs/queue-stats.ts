// Exact queue counts, read from pg-boss's job table at the moment of asking (pg-boss's own stats are
// a cache refreshed by its monitor). The classification of a job lives in one SQL function,
// queue_job_states() (db/migrations/0002_inspection_views.sql), which the queue_counts view shares.
import { sql } from 'drizzle-orm';
import { queryRows, type Executor } from '../db/client.ts';
import { QUEUE_GROUP } from './queues.ts';

/** The seed's `getQueueStats()` shape (Bull's names) and what pg-boss adds to it. */
export interface QueueCounts {
  queueName: string;
  /** Ready to run now: created or retry, start time reached. */
  waiting: number;
  active: number;
  /** Finished and still retained (pg-boss deletes them after the retention period). */
  completed: number;
  /** Every attempt used. With a dead letter queue, a copy of each also counts in `deadLettered`. */
  failed: number;
  /** Created or retry with a start time ahead: a retry backoff or a scheduled start. */
  delayed: number;
  /** In pg-boss's retry state: failed at least once and due again (part of waiting or delayed). */
  retrying: number;
  /** In this queue's dead letter queue and neither completed nor cancelled: what a redrive would move. */
  deadLettered: number;
  /** How long the longest-waiting ready job has waited, in whole seconds; 0 when none waits. */
  oldestWaitingSeconds: number;
}

export interface QueueStats {
  capturedAt: Date;
  /** The `tatum` group: every queue whose name starts with `tatum.`, summed. */
  group: QueueCounts;
  /** Each queue that takes work, by name; dead letter queues appear as `deadLettered` of their source. */
  queues: QueueCounts[];
}

/**
 * One statement: every queue pg-boss knows (so an idle queue reads as zeros), minus dead letter
 * queues and pg-boss's internal ones, with its jobs counted per class. now() is the statement's time, so the counts and
 * `capturedAt` describe one instant.
 */
export async function readQueueStats(db: Executor): Promise<QueueStats> {
  const rows = await queryRows<QueueCounts & { capturedAt: Date | string }>(db, sql`
    with counted as (
      select
        queue,
        count(*) filter (where state = 'waiting')::int as waiting,
        count(*) filter (where state = 'active')::int as active,
        count(*) filter (where state = 'completed')::int as completed,
        count(*) filter (where state = 'failed')::int as failed,
        count(*) filter (where state = 'delayed')::int as delayed,
        count(*) filter (where retrying and state in ('waiting', 'delayed'))::int as retrying,
        count(*) filter (where state = 'dead_lettered')::int as dead_lettered,
        min(start_after) filter (where state = 'waiting') as oldest_waiting_since
      from queue_job_states()
      group by queue
    )
    select
      q.name as "queueName",
      coalesce(c.waiting, 0) as waiting,
      coalesce(c.active, 0) as active,
      coalesce(c.completed, 0) as completed,
      coalesce(c.failed, 0) as failed,
      coalesce(c.delayed, 0) as delayed,
      coalesce(c.retrying, 0) as retrying,
      coalesce(c.dead_lettered, 0) as "deadLettered",
      coalesce(floor(extract(epoch from now() - c.oldest_waiting_since)), 0)::int as "oldestWaitingSeconds",
      now() as "capturedAt"
    from pgboss.queue q
    left join counted c on c.queue = q.name
    where q.name not in (select dead_letter from pgboss.queue where dead_letter is not null)
      and q.name not like '\_\_pgboss\_\_%' -- pg-boss's own (the scheduler's send-it queue)
    order by q.name
  `);
  const capturedAt = rows[0] ? new Date(rows[0].capturedAt) : new Date();
  const queues = rows.map(({ capturedAt: _, ...counts }) => counts);
  return { capturedAt, group: sumCounts(QUEUE_GROUP, queues.filter((q) => q.queueName.startsWith(`${QUEUE_GROUP}.`))), queues };
}

/** A group's counts: the members' summed, and the oldest wait among them. */
export function sumCounts(queueName: string, members: readonly QueueCounts[]): QueueCounts {
  const total = (key: keyof Omit<QueueCounts, 'queueName' | 'oldestWaitingSeconds'>) => members.reduce((sum, q) => sum + q[key], 0);
  return {
    queueName,
    waiting: total('waiting'),
    active: total('active'),
    completed: total('completed'),
    failed: total('failed'),
    delayed: total('delayed'),
    retrying: total('retrying'),
    deadLettered: total('deadLettered'),
    oldestWaitingSeconds: Math.max(0, ...members.map((q) => q.oldestWaitingSeconds)),
  };
}
