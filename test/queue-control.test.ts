// Job control over tRPC: every admin procedure refuses a missing or wrong token; a job that fails
// every attempt lands in the dead letter queue, is listed with its error, and goes back exactly once
// by queue.retry or queue.redrive; queue.job tells its whole story.
import { TRPCClientError } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUEUES } from '../jobs/queues.ts';
import { startWorker, type RunningWorker } from '../jobs/worker.ts';
import { eventually } from './helpers/outage.ts';
import { ADMIN_TOKEN, DEPOSIT_QUEUE, startOperationsApp, type OperationsApp } from './helpers/operations.ts';
import { trpcClient } from './helpers/trpc.ts';

let app: OperationsApp;
let worker: RunningWorker;
/** The deposit handler fails while this holds, so a test decides when a job may succeed. */
let failing = true;
beforeAll(async () => {
  app = await startOperationsApp({ QUEUE_ATTEMPTS: '2', QUEUE_BACKOFF_MS: '1000' });
  worker = await startWorker(app.services, {
    queues: [DEPOSIT_QUEUE],
    handlers: {
      [DEPOSIT_QUEUE]: async () => {
        if (failing) throw new Error('Tatum said no (test)');
      },
    },
  });
});
afterAll(async () => {
  await worker.stop(1000);
  await app.stop();
});

const admin = () => trpcClient(app.url, ADMIN_TOKEN);
const codeOf = (err: unknown) => (err instanceof TRPCClientError ? (err.data as { code?: string } | undefined)?.code : String(err));
const state = async (id: string) => (await app.database.query<{ state: string }>('select state from pgboss.job where id = $1', [id])).rows[0]?.state;

/** Sends a deposit job and waits until both attempts have failed and its copy sits in the dead letter queue. */
async function deadLettered(): Promise<string> {
  const id = (await app.services.boss.send(DEPOSIT_QUEUE, { depositId: crypto.randomUUID() }))!;
  const copy = await eventually(
    async () => (await app.database.query('select id from pgboss.job where source_id = $1', [id])).rows[0],
    (row) => row !== undefined,
    20_000,
  );
  expect(copy).toBeDefined();
  return id;
}

describe('admin procedures', () => {
  const someId = '00000000-0000-4000-8000-000000000000';
  const calls = {
    'queue.stats': (c: ReturnType<typeof trpcClient>) => c.queue.stats.query(),
    'queue.failed': (c: ReturnType<typeof trpcClient>) => c.queue.failed.query({ queue: 'tatum' }),
    'queue.retry': (c: ReturnType<typeof trpcClient>) => c.queue.retry.mutate({ jobId: someId }),
    'queue.redrive': (c: ReturnType<typeof trpcClient>) => c.queue.redrive.mutate({ queue: 'tatum' }),
    'queue.job': (c: ReturnType<typeof trpcClient>) => c.queue.job.query({ jobId: someId }),
  };

  it.each(Object.keys(calls))('%s answers UNAUTHORIZED without the admin token and with a wrong one', async (name) => {
    const call = calls[name as keyof typeof calls];
    expect(codeOf(await call(trpcClient(app.url)).catch((e: unknown) => e))).toBe('UNAUTHORIZED');
    expect(codeOf(await call(trpcClient(app.url, `${ADMIN_TOKEN}-wrong`)).catch((e: unknown) => e))).toBe('UNAUTHORIZED');
  });
});

describe('failed jobs and their dead letters', () => {
  let original: string;

  it('lists a job that used every attempt, and its dead-lettered copy, with the error and attempts', async () => {
    original = await deadLettered();
    const page = await admin().queue.failed.query({ queue: DEPOSIT_QUEUE });
    const mine = page.items.filter((item) => item.id === original || (item.kind === 'dead_lettered' && (item.data as { depositId?: string }).depositId !== undefined));
    expect(mine.map((item) => [item.kind, item.queue, item.attempts, item.error])).toEqual(
      expect.arrayContaining([
        ['failed', DEPOSIT_QUEUE, 2, 'Tatum said no (test)'],
        ['dead_lettered', DEPOSIT_QUEUE, 2, 'Tatum said no (test)'],
      ]),
    );
    const stats = await admin().queue.stats.query({ queue: DEPOSIT_QUEUE });
    expect(stats.queues[0]).toMatchObject({ failed: 1, deadLettered: 1 });
  });

  it('queue.job shows the job and its lineage: the original, then its dead letter', async () => {
    const job = await admin().queue.job.query({ jobId: original });
    expect(job).toMatchObject({ id: original, queue: DEPOSIT_QUEUE, state: 'failed', attempts: 2, maxAttempts: 2 });
    expect(job.history.map((h) => [h.queue, h.state])).toEqual([
      [DEPOSIT_QUEUE, 'failed'],
      [QUEUES.depositReceivedDead, 'created'],
    ]);
  });

  it('queue.retry on the failed original sends its dead letter back (once) and the job then completes', async () => {
    failing = false;
    const retried = await admin().queue.retry.mutate({ jobId: original });
    expect(retried).toMatchObject({ queue: DEPOSIT_QUEUE, action: 'redriven' });
    expect(retried.jobId).not.toBe(original);
    expect(await eventually(() => state(retried.jobId), (s) => s === 'completed', 15_000)).toBe('completed');

    // The dead letter is gone, and retrying the same failure again would run it twice: refused.
    const again = await admin().queue.retry.mutate({ jobId: original }).catch((e: unknown) => e);
    expect(codeOf(again)).toBe('CONFLICT');
    const job = await admin().queue.job.query({ jobId: original });
    expect(job.history.map((h) => [h.queue, h.state])).toEqual([
      [DEPOSIT_QUEUE, 'failed'],
      [DEPOSIT_QUEUE, 'completed'],
    ]);
    failing = true;
  });

  it('queue.redrive sends every waiting dead letter of the queue back to it', async () => {
    await worker.stop(1000); // nobody takes the redriven jobs, so they can be counted waiting
    const ids = [await sendFailed(), await sendFailed()];
    const before = (await admin().queue.stats.query({ queue: DEPOSIT_QUEUE })).queues[0]!;
    expect(before.deadLettered).toBe(2);
    expect(await admin().queue.redrive.mutate({ queue: 'tatum' })).toEqual({ moved: 2 });
    const after = (await admin().queue.stats.query({ queue: DEPOSIT_QUEUE })).queues[0]!;
    expect(after).toMatchObject({ deadLettered: 0, waiting: before.waiting + 2 });
    expect(await admin().queue.redrive.mutate({ queue: DEPOSIT_QUEUE })).toEqual({ moved: 0 });
    for (const id of ids) expect(await state(id)).toBe('failed'); // the originals stay as history
  });

  it('pages failed jobs newest first with a cursor, never repeating one', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await admin().queue.failed.query({ queue: DEPOSIT_QUEUE, limit: 1, cursor });
      seen.push(...page.items.map((i) => i.id));
      expect(page.items.length).toBeLessThanOrEqual(1);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    const all = await admin().queue.failed.query({ queue: DEPOSIT_QUEUE, limit: 500 });
    expect(seen).toEqual(all.items.map((i) => i.id));
    expect(new Set(seen).size).toBe(seen.length);
    const bad = await admin().queue.failed.query({ queue: DEPOSIT_QUEUE, cursor: 'nonsense' }).catch((e: unknown) => e);
    expect(codeOf(bad)).toBe('BAD_REQUEST');
  });

  it('retries in place a failed job of a queue without a dead letter queue', async () => {
    const id = (await app.services.boss.send(QUEUES.reconcile, {}, { retryLimit: 0 }))!;
    const [job] = await app.services.boss.fetch(QUEUES.reconcile);
    expect(job?.id).toBe(id);
    await app.services.boss.fail(QUEUES.reconcile, id, { message: 'reconcile failed (test)' });
    expect(await admin().queue.retry.mutate({ jobId: id })).toEqual({ jobId: id, queue: QUEUES.reconcile, action: 'retried' });
    expect(await state(id)).toBe('retry');
  });

  it('refuses to retry a job that has not failed, and names an unknown one', async () => {
    const id = (await app.services.boss.send(QUEUES.reconcile, {}))!;
    expect(codeOf(await admin().queue.retry.mutate({ jobId: id }).catch((e: unknown) => e))).toBe('CONFLICT');
    const unknown = await admin().queue.job.query({ jobId: crypto.randomUUID() }).catch((e: unknown) => e);
    expect(codeOf(unknown)).toBe('NOT_FOUND');
    expect(codeOf(await admin().queue.failed.query({ queue: 'bull' }).catch((e: unknown) => e))).toBe('NOT_FOUND');
    expect(codeOf(await admin().queue.job.query({ jobId: 'not-a-uuid' }).catch((e: unknown) => e))).toBe('BAD_REQUEST');
  });
});

/** A deposit job failed terminally by hand (no worker running): its copy waits in the dead letter queue. */
async function sendFailed(): Promise<string> {
  const id = (await app.services.boss.send(DEPOSIT_QUEUE, { depositId: crypto.randomUUID() }, { retryLimit: 0 }))!;
  const [job] = await app.services.boss.fetch(DEPOSIT_QUEUE);
  expect(job?.id).toBe(id);
  await app.services.boss.fail(DEPOSIT_QUEUE, id, { message: 'failed by hand (test)' });
  return id;
}
