// /readyz follows the database and pg-boss; /metrics carries job counts, job durations, Tatum
// requests and HTTP durations; every HTTP log line has a request id; the admin token is never logged.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordTatumRequest } from '../jobs/metrics.ts';
import { startWorker } from '../jobs/worker.ts';
import { QUEUES } from '../jobs/queues.ts';
import { eventually, setDatabaseAvailable } from './helpers/outage.ts';
import { ADMIN_TOKEN, DEPOSIT_QUEUE, seedJobs, startOperationsApp, type OperationsApp } from './helpers/operations.ts';
import { trpcClient } from './helpers/trpc.ts';

let app: OperationsApp;
beforeAll(async () => {
  app = await startOperationsApp();
  await seedJobs(app.services.boss);
});
afterAll(() => app.stop());

const metrics = async () => {
  const res = await fetch(`${app.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return res.text();
};

describe('GET /metrics', () => {
  it('exports exact job counts by queue and state', async () => {
    const text = await metrics();
    expect(text).toContain(`queue_jobs{queue="${DEPOSIT_QUEUE}",state="waiting"} 3`);
    expect(text).toContain(`queue_jobs{queue="${DEPOSIT_QUEUE}",state="delayed"} 2`);
    expect(text).toContain(`queue_jobs{queue="${DEPOSIT_QUEUE}",state="deadLettered"} 1`);
    expect(text).toContain(`queue_jobs{queue="${QUEUES.provision}",state="failed"} 0`);
    expect(text).toMatch(new RegExp(`queue_oldest_waiting_seconds\\{queue="${DEPOSIT_QUEUE}"\\} \\d+`));
  });

  it('exports job durations recorded by the worker, Tatum requests and HTTP durations', async () => {
    const worker = await startWorker(app.services, { queues: [QUEUES.provision], handlers: { [QUEUES.provision]: async () => {} } });
    try {
      const id = (await app.services.boss.send(QUEUES.provision, { userId: crypto.randomUUID() }))!;
      await eventually(
        async () => (await app.database.query('select state from pgboss.job where id = $1', [id])).rows[0]?.state,
        (state) => state === 'completed',
      );
    } finally {
      await worker.stop(1000);
    }
    recordTatumRequest({ route: '/v3/ledger/account', method: 'POST', status: 201, durationMs: 42 });
    recordTatumRequest({ route: '/v3/ledger/account', method: 'POST', status: 'timeout', durationMs: 10_000 });
    await fetch(`${app.url}/healthz`);

    const text = await metrics();
    expect(text).toMatch(new RegExp(`job_duration_seconds_count\\{queue="${QUEUES.provision}",outcome="completed"\\} [1-9]`));
    expect(text).toContain('tatum_requests_total{route="/v3/ledger/account",method="POST",status="201"} 1');
    expect(text).toContain('tatum_requests_total{route="/v3/ledger/account",method="POST",status="timeout"} 1');
    expect(text).toContain('tatum_request_duration_seconds_count{route="/v3/ledger/account",method="POST"} 2');
    expect(text).toMatch(/http_request_duration_seconds_count\{method="GET",route="\/healthz",status="200"\} [1-9]/);
  });

  it('labels requests by known route only, so invented paths cannot multiply series', async () => {
    await fetch(`${app.url}/no/such/${crypto.randomUUID()}`);
    await fetch(`${app.url}/trpc/${crypto.randomUUID()}`);
    await fetch(`${app.url}/trpc/system.info`);
    const text = await metrics();
    expect(text).toMatch(/http_request_duration_seconds_count\{method="GET",route="\(unmatched\)",status="404"\} [1-9]/);
    expect(text).toMatch(/http_request_duration_seconds_count\{method="GET",route="\/trpc \(unknown\)",status="404"\} [1-9]/);
    expect(text).toMatch(/http_request_duration_seconds_count\{method="GET",route="\/trpc\/system.info",status="200"\} [1-9]/);
  });
});

describe('request ids and logs', () => {
  it('gives every request an id, echoes a caller id, and puts it on the request log line', async () => {
    const fresh = await fetch(`${app.url}/trpc/system.info`);
    const id = fresh.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const given = await fetch(`${app.url}/healthz`, { headers: { 'x-request-id': 'proxy-abc.123' } });
    expect(given.headers.get('x-request-id')).toBe('proxy-abc.123');
    const hostile = await fetch(`${app.url}/healthz`, { headers: { 'x-request-id': 'a b'.repeat(40) } });
    expect(hostile.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);

    const lines = await eventually(
      async () => app.logs.lines().filter((l) => l.msg === 'http request' && (l.reqId === id || l.reqId === 'proxy-abc.123')),
      (found) => found.length === 2,
    );
    expect(lines.map((l) => [l.route, l.status])).toEqual(expect.arrayContaining([['/trpc/system.info', 200], ['/healthz', 200]]));
    expect(app.logs.lines().filter((l) => l.msg === 'http request').every((l) => typeof l.reqId === 'string')).toBe(true);
  });

  it('never logs the admin token, however it is sent', async () => {
    await trpcClient(app.url, ADMIN_TOKEN).queue.stats.query();
    await trpcClient(app.url, `${ADMIN_TOKEN}-wrong`).queue.stats.query().catch(() => undefined);
    await fetch(`${app.url}/trpc/queue.stats?token=${ADMIN_TOKEN}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    await eventually(async () => app.logs.lines().filter((l) => l.msg === 'http request').length, (n) => n >= 3);
    expect(app.logs.text()).not.toContain(ADMIN_TOKEN);
  });
});

describe('GET /readyz', () => {
  it('is 200 while the database answers and pg-boss runs, 503 while the database is down, 200 again after', async () => {
    const ready = await fetch(`${app.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', database: 'reachable', pgBoss: 'started' });

    await setDatabaseAvailable(app.database.name, false);
    try {
      const down = await fetch(`${app.url}/readyz`);
      expect(down.status).toBe(503);
      expect(await down.json()).toEqual({ status: 'unavailable', database: 'unreachable', pgBoss: 'started' });
      // The process itself is fine: liveness stays green, and /metrics still answers.
      expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
      expect(await metrics()).toContain('http_request_duration_seconds');
    } finally {
      await setDatabaseAvailable(app.database.name, true);
    }
    const back = await eventually(async () => (await fetch(`${app.url}/readyz`)).status, (status) => status === 200);
    expect(back).toBe(200);
  });

  it('is 503 once pg-boss has stopped', async () => {
    await app.services.boss.stop({ graceful: false });
    const res = await fetch(`${app.url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'unavailable', database: 'reachable', pgBoss: 'stopped' });
  });
});
