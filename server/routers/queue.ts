// Operators' procedures (admin token): exact queue counts, failed jobs, retry, redrive, one job's
// history. The seed's `queueManager.getQueueStats('tatum')` is `queue.stats()`'s `group`.
import { TRPCError } from '@trpc/server';
import { z } from 'zod';
import { jobDetail, JobControlError, listFailedJobs, queuesNamed, redriveQueues, retryJob } from '../../jobs/job-control.ts';
import { QUEUE_GROUP } from '../../jobs/queues.ts';
import { adminProcedure, router } from '../trpc.ts';

const queueName = z.string().min(1).max(200);
const jobId = z.object({ jobId: z.uuid() }).strict();

const ERROR_CODES = { 'not-found': 'NOT_FOUND', conflict: 'CONFLICT', invalid: 'BAD_REQUEST' } as const;

/** Job control's refusals as the client's mistake (400/404/409), never a 500. */
async function controlled<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof JobControlError) throw new TRPCError({ code: ERROR_CODES[err.kind], message: err.message });
    throw err;
  }
}

export const queueRouter = router({
  /**
   * Counts for the `tatum` group and each queue, exact at `capturedAt` (at most QUEUE_STATS_CACHE_MS
   * old). `queue` narrows `queues` to one queue, or to the group's members with `tatum`.
   */
  stats: adminProcedure
    .input(z.object({ queue: queueName.optional() }).strict().optional())
    .query(async ({ ctx, input }) => {
      const stats = await ctx.stats.read();
      const wanted = input?.queue;
      if (wanted === undefined) return stats;
      const queues =
        wanted === QUEUE_GROUP ? stats.queues.filter((q) => q.queueName.startsWith(`${QUEUE_GROUP}.`)) : stats.queues.filter((q) => q.queueName === wanted);
      if (queues.length === 0) {
        throw new TRPCError({ code: 'NOT_FOUND', message: `Unknown queue "${wanted}". Known: ${[QUEUE_GROUP, ...stats.queues.map((q) => q.queueName)].join(', ')}.` });
      }
      return { ...stats, queues };
    }),

  /** Failed and dead-lettered jobs of a queue (or the `tatum` group), newest first, with error and attempts. */
  failed: adminProcedure
    .input(z.object({ queue: queueName, limit: z.number().int().min(1).max(500).default(50), cursor: z.string().max(200).optional() }).strict())
    .query(({ ctx, input }) => controlled(async () => listFailedJobs(ctx.db, await queuesNamed(ctx.db, input.queue), input))),

  /** Runs a failed or dead-lettered job again, once (see jobs/job-control.ts retryJob). */
  retry: adminProcedure.input(jobId).mutation(({ ctx, input }) => controlled(() => retryJob(ctx.db, ctx.boss, input.jobId))),

  /** Sends every waiting dead letter of a queue (or the `tatum` group) back to its source queue. */
  redrive: adminProcedure
    .input(z.object({ queue: queueName }).strict())
    .mutation(({ ctx, input }) => controlled(async () => ({ moved: await redriveQueues(ctx.boss, await queuesNamed(ctx.db, input.queue)) }))),

  /** One job's state, payload and the history of its lineage (attempts, dead letter, redrives). */
  job: adminProcedure.input(jobId).query(({ ctx, input }) => controlled(() => jobDetail(ctx.db, input.jobId))),
});
