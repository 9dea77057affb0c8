// queue.stats: exact counts from pg-boss's table for jobs put in every state, the seed's shape, the
// `tatum` group, the queue_counts view agreeing, and the admin token required.
import { TRPCClientError } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUEUES } from '../jobs/queues.ts';
import type { AppRouter } from '../server/routers/index.ts';
import { readQueueStats } from '../jobs/queue-stats.ts';
import { ADMIN_TOKEN, DEPOSIT_QUEUE, SEEDED_COUNTS, seedJobs, startOperationsApp, type OperationsApp, type SeededJobs } from './helpers/operations.ts';
import { trpcClient } from './helpers/trpc.ts';

let app: OperationsApp;
let seeded: SeededJobs;
beforeAll(async () => {
  app = await startOperationsApp();
  seeded = await seedJobs(app.services.boss);
  // A job outside the tatum group, which the group must not count.
  await app.services.boss.send(QUEUES.emailSend, { seeded: true });
});
afterAll(() => app.stop());

const admin = () => trpcClient(app.url, ADMIN_TOKEN);
const zero = { waiting: 0, active: 0, completed: 0, failed: 0, delayed: 0, retrying: 0, deadLettered: 0, oldestWaitingSeconds: 0 };

describe('queue.stats', () => {
  it('counts every state exactly, per queue and for the tatum group, in the seed shape plus pg-boss extras', async () => {
    const stats = await admin().queue.stats.query();
    expect(stats.capturedAt).toBeInstanceOf(Date);
    const deposits = stats.queues.find((q) => q.queueName === DEPOSIT_QUEUE);
    expect(deposits).toEqual({ ...SEEDED_COUNTS, oldestWaitingSeconds: expect.any(Number) });
    expect(stats.queues.find((q) => q.queueName === QUEUES.provision)).toEqual({ queueName: QUEUES.provision, ...zero });
    expect(stats.queues.find((q) => q.queueName === QUEUES.emailSend)).toMatchObject({ waiting: 1 });
    // Dead letter queues are not listed: their jobs are the source queue's deadLettered.
    expect(stats.queues.map((q) => q.queueName)).toEqual([QUEUES.emailSend, QUEUES.provision, DEPOSIT_QUEUE, QUEUES.reconcile].sort());
    expect(stats.group).toEqual({ ...SEEDED_COUNTS, queueName: 'tatum', oldestWaitingSeconds: deposits!.oldestWaitingSeconds });
  });

  it('reports how long the oldest ready job has waited', async () => {
    await app.database.query(`update pgboss.job set start_after = now() - interval '120 seconds' where id = $1`, [seeded.waiting[0]]);
    const { group } = await admin().queue.stats.query({ queue: 'tatum' });
    expect(group.oldestWaitingSeconds).toBeGreaterThanOrEqual(120);
    expect(group.oldestWaitingSeconds).toBeLessThan(3600);
  });

  it('narrows to one queue or to the group, and names the known queues for an unknown one', async () => {
    const one = await admin().queue.stats.query({ queue: DEPOSIT_QUEUE });
    expect(one.queues.map((q) => q.queueName)).toEqual([DEPOSIT_QUEUE]);
    const group = await admin().queue.stats.query({ queue: 'tatum' });
    expect(group.queues.every((q) => q.queueName.startsWith('tatum.'))).toBe(true);
    const unknown = await admin().queue.stats.query({ queue: 'bull' }).catch((err: unknown) => err);
    expect(unknown).toBeInstanceOf(TRPCClientError);
    expect((unknown as TRPCClientError<AppRouter>).data?.code).toBe('NOT_FOUND');
    expect((unknown as Error).message).toContain(DEPOSIT_QUEUE);
  });

  it('follows the database: a job taken moves from waiting to active at once (no 60 s pg-boss cache)', async () => {
    const before = await readQueueStats(app.services.db);
    const [job] = await app.services.boss.fetch(DEPOSIT_QUEUE);
    expect(job).toBeDefined();
    const after = await readQueueStats(app.services.db);
    const count = (s: typeof before) => s.queues.find((q) => q.queueName === DEPOSIT_QUEUE)!;
    expect(count(after).waiting).toBe(count(before).waiting - 1);
    expect(count(after).active).toBe(count(before).active + 1);
  });

  it('agrees with the queue_counts view operators query in psql', async () => {
    const stats = await readQueueStats(app.services.db);
    const { rows } = await app.database.query<{ queue: string; state: string; count: number }>('select queue, state, count from queue_counts');
    const view = (state: string) => rows.find((r) => r.queue === DEPOSIT_QUEUE && r.state === state)?.count ?? 0;
    const deposits = stats.queues.find((q) => q.queueName === DEPOSIT_QUEUE)!;
    expect({ waiting: view('waiting'), active: view('active'), completed: view('completed'), failed: view('failed'), delayed: view('delayed'), deadLettered: view('dead_lettered') }).toEqual({
      waiting: deposits.waiting,
      active: deposits.active,
      completed: deposits.completed,
      failed: deposits.failed,
      delayed: deposits.delayed,
      deadLettered: deposits.deadLettered,
    });
  });

  it('refuses bad input with a 400 naming the problem', async () => {
    const res = await fetch(`${app.url}/trpc/queue.stats?input=${encodeURIComponent(JSON.stringify({ json: { queue: 5 } }))}`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toContain('queue');
  });
});
