// What an operator does to jobs that went wrong: list them, retry one, send a dead letter queue back
// to its source, read one job's history. Reads are SQL over pg-boss's table (the columns are
// pg-boss 12's); moves go through pg-boss's own retry and redrive, which keep its invariants.
import { sql } from 'drizzle-orm';
import type { PgBoss } from 'pg-boss';
import { queryRows, type Executor } from '../db/client.ts';
import { QUEUE_GROUP } from './queues.ts';

export interface SourceQueue {
  name: string;
  deadLetter: string | null;
}

export class JobControlError extends Error {
  constructor(
    readonly kind: 'not-found' | 'conflict' | 'invalid',
    message: string,
  ) {
    super(message);
    this.name = 'JobControlError';
  }
}

/** Queues that take work (dead letter queues excluded), each with its dead letter queue. */
export async function sourceQueues(db: Executor): Promise<SourceQueue[]> {
  return queryRows<SourceQueue>(db, sql`
    select name, dead_letter as "deadLetter" from pgboss.queue
    where name not in (select dead_letter from pgboss.queue where dead_letter is not null)
      and name not like '\_\_pgboss\_\_%' -- pg-boss's own (the scheduler's send-it queue)
    order by name
  `);
}

/** `tatum` is the group; anything else must name a queue that takes work. */
export async function queuesNamed(db: Executor, name: string): Promise<SourceQueue[]> {
  const queues = await sourceQueues(db);
  const chosen = name === QUEUE_GROUP ? queues.filter((q) => q.name.startsWith(`${QUEUE_GROUP}.`)) : queues.filter((q) => q.name === name);
  if (chosen.length === 0) {
    throw new JobControlError('not-found', `Unknown queue "${name}". Known: ${[QUEUE_GROUP, ...queues.map((q) => q.name)].join(', ')}.`);
  }
  return chosen;
}

export interface FailedJob {
  id: string;
  /** The queue the job failed in. */
  queue: string;
  /** `failed`: every attempt used, in its queue. `dead_lettered`: the copy waiting in the dead letter queue. */
  kind: 'failed' | 'dead_lettered';
  /** The last attempt's error message (for a dead letter, the failed original's). */
  error: string | null;
  attempts: number;
  failedAt: Date;
  data: unknown;
}

export interface FailedPage {
  items: FailedJob[];
  /** Pass back as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
}

/**
 * Failed and dead-lettered jobs of `queues`, newest first, in keyset pages on (failedAt, id): a page
 * never repeats or skips a job however many fail meanwhile.
 */
export async function listFailedJobs(db: Executor, queues: SourceQueue[], options: { limit: number; cursor?: string }): Promise<FailedPage> {
  const names = queues.map((q) => q.name);
  const deadLetters = queues.flatMap((q) => (q.deadLetter ? [q.deadLetter] : []));
  const after = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
  const rows = await queryRows<FailedJob>(db, sql`
    select id, queue, kind, error, attempts, "failedAt", data from (
      select
        j.id,
        coalesce(j.source_name, j.name) as queue,
        case when j.name = any(${sql.param(deadLetters)}::text[]) then 'dead_lettered' else 'failed' end as kind,
        -- A dead letter that a redrive could not move carries that reason in its own output.
        coalesce(j.output, j.source_output)->>'message' as error,
        case when j.name = any(${sql.param(deadLetters)}::text[]) then coalesce(j.source_retry_count, 0) + 1 else j.retry_count + 1 end as attempts,
        case when j.name = any(${sql.param(deadLetters)}::text[]) then j.created_on else j.completed_on end as "failedAt",
        j.data
      from pgboss.job j
      where (j.name = any(${sql.param(names)}::text[]) and j.state = 'failed')
         or (j.name = any(${sql.param(deadLetters)}::text[]) and j.state not in ('completed', 'cancelled'))
    ) failed
    where ${after ? sql`("failedAt", id) < (${after.at}::timestamptz, ${after.id}::uuid)` : sql`true`}
    order by "failedAt" desc, id desc
    limit ${options.limit + 1}
  `);
  const items = rows.slice(0, options.limit).map((row) => ({ ...row, failedAt: new Date(row.failedAt) }));
  const last = items.at(-1);
  return { items, nextCursor: rows.length > options.limit && last ? encodeCursor(last.failedAt, last.id) : null };
}

function encodeCursor(at: Date, id: string): string {
  return Buffer.from(JSON.stringify([at.toISOString(), id])).toString('base64url');
}

function isIsoInstant(text: string): boolean {
  const time = Date.parse(text);
  return !Number.isNaN(time) && new Date(time).toISOString() === text;
}

function decodeCursor(cursor: string): { at: string; id: string } {
  try {
    const [at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    // Only the exact form encodeCursor writes: anything else Date.parse accepts, Postgres may not.
    if (typeof at === 'string' && isIsoInstant(at) && typeof id === 'string' && /^[0-9a-f-]{36}$/i.test(id)) return { at, id };
  } catch {
    // reported below
  }
  throw new JobControlError('invalid', 'Unknown cursor: pass back the nextCursor of a previous page.');
}

interface JobRow {
  id: string;
  queue: string;
  state: string;
  sourceName: string | null;
  sourceId: string | null;
  rootId: string;
  inDeadLetter: boolean;
}

async function findJob(db: Executor, jobId: string): Promise<JobRow> {
  const [job] = await queryRows<JobRow>(db, sql`
    select j.id, j.name as queue, j.state, j.source_name as "sourceName", j.source_id as "sourceId",
      coalesce(j.source_root_id, j.id) as "rootId",
      j.name in (select dead_letter from pgboss.queue where dead_letter is not null) as "inDeadLetter"
    from pgboss.job j where j.id = ${jobId}::uuid
  `);
  if (!job) throw new JobControlError('not-found', `No job ${jobId}.`);
  return job;
}

export interface RetryResult {
  /** The job that will run: the same id for an in-place retry, a new one for a redriven dead letter. */
  jobId: string;
  queue: string;
  action: 'retried' | 'redriven';
}

/**
 * Runs a failed job again, exactly once. A job that failed in a queue with a dead letter queue has a
 * copy waiting there; retrying the original as well would run it twice, so the copy is what goes
 * back (and the same happens when the dead letter itself is named). Only a job with no copy waiting
 * is retried in place.
 */
export async function retryJob(db: Executor, boss: PgBoss, jobId: string): Promise<RetryResult> {
  const job = await findJob(db, jobId);
  if (job.inDeadLetter) {
    if (job.state !== 'created' && job.state !== 'retry') {
      throw new JobControlError('conflict', `Dead letter ${job.id} is ${job.state}; only a waiting dead letter can be sent back.`);
    }
    return redriveOne(db, boss, job);
  }
  if (job.state !== 'failed') throw new JobControlError('conflict', `Job ${job.id} is ${job.state}; only failed jobs can be retried.`);

  const [copy] = await queryRows<JobRow>(db, sql`
    select j.id, j.name as queue, j.state, j.source_name as "sourceName", j.source_id as "sourceId",
      coalesce(j.source_root_id, j.id) as "rootId", true as "inDeadLetter"
    from pgboss.job j
    where j.source_id = ${job.id}::uuid and j.state in ('created', 'retry')
      and j.name in (select dead_letter from pgboss.queue where dead_letter is not null)
  `);
  if (copy) return redriveOne(db, boss, copy);
  // A later job of the same lineage that is waiting, running or done means the failure was already
  // dealt with (retried, or redriven and since completed): running it again would be twice.
  const [rerun] = await queryRows<{ id: string; state: string }>(db, sql`
    select id, state from pgboss.job
    where coalesce(source_root_id, id) = ${job.rootId}::uuid and id <> ${job.id}::uuid
      and state in ('created', 'retry', 'active', 'completed')
  `);
  if (rerun) throw new JobControlError('conflict', `Job ${job.id} was already retried as ${rerun.id} (${rerun.state}).`);
  await boss.retry(job.queue, job.id);
  return { jobId: job.id, queue: job.queue, action: 'retried' };
}

async function redriveOne(db: Executor, boss: PgBoss, deadLetter: JobRow): Promise<RetryResult> {
  const moved = await boss.redrive(deadLetter.queue, { ids: [deadLetter.id] });
  if (moved === 0) {
    const [why] = await queryRows<{ message: string | null }>(db, sql`select output->>'message' as message from pgboss.job where id = ${deadLetter.id}::uuid`);
    throw new JobControlError('conflict', why?.message ?? `Dead letter ${deadLetter.id} could not be sent back.`);
  }
  // The re-created job carries the chain's root id; it is the newest job of the chain in the source queue.
  const [created] = await queryRows<{ id: string }>(db, sql`
    select id from pgboss.job
    where name = ${deadLetter.sourceName} and source_root_id = ${deadLetter.rootId}::uuid
    order by created_on desc limit 1
  `);
  return { jobId: created!.id, queue: deadLetter.sourceName!, action: 'redriven' };
}

/** Sends every waiting dead letter of `queues` back to its source queue; returns how many moved. */
export async function redriveQueues(boss: PgBoss, queues: SourceQueue[]): Promise<number> {
  const batch = 1000;
  let moved = 0;
  for (const { name, deadLetter } of queues) {
    if (!deadLetter) continue;
    // Redrive moves at most `limit` per call; jobs it cannot move are failed in place, so the loop ends.
    for (;;) {
      const count = await boss.redrive(deadLetter, { sourceName: name, limit: batch });
      moved += count;
      if (count < batch) break;
    }
  }
  return moved;
}

export interface JobAttemptRecord {
  id: string;
  queue: string;
  state: string;
  attempts: number;
  maxAttempts: number;
  createdOn: Date;
  startedOn: Date | null;
  completedOn: Date | null;
  startAfter: Date;
  /** The error or result the job ended with (for a dead letter, the failed original's). */
  output: unknown;
}

export interface JobDetail extends JobAttemptRecord {
  data: unknown;
  singletonKey: string | null;
  /**
   * Every job of its lineage, oldest first: the job as sent, its dead letter copies and the jobs
   * redrives re-created from them (pg-boss links them by the first job's id).
   */
  history: JobAttemptRecord[];
}

export async function jobDetail(db: Executor, jobId: string): Promise<JobDetail> {
  const job = await findJob(db, jobId);
  const rows = await queryRows<JobAttemptRecord & { data: unknown; singletonKey: string | null }>(db, sql`
    select id, name as queue, state,
      case when started_on is null then retry_count else retry_count + 1 end as attempts,
      retry_limit + 1 as "maxAttempts",
      created_on as "createdOn", started_on as "startedOn", completed_on as "completedOn", start_after as "startAfter",
      coalesce(output, source_output) as output,
      data, singleton_key as "singletonKey"
    from pgboss.job
    where id = ${job.rootId}::uuid or source_root_id = ${job.rootId}::uuid
    order by created_on, id
  `);
  const history = rows.map(({ data: _data, singletonKey: _key, ...record }) => ({
    ...record,
    createdOn: new Date(record.createdOn),
    startedOn: record.startedOn && new Date(record.startedOn),
    completedOn: record.completedOn && new Date(record.completedOn),
    startAfter: new Date(record.startAfter),
  }));
  const self = rows.find((r) => r.id === job.id)!;
  return { ...history.find((r) => r.id === job.id)!, data: self.data, singletonKey: self.singletonKey, history };
}
