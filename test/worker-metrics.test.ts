import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { recordJobDuration, recordTatumRequest, serveWorkerMetrics } from '../jobs/metrics.ts';

const server = await serveWorkerMetrics(0, '127.0.0.1');
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
afterAll(() => new Promise((resolve) => server.close(resolve)));

describe('a worker process’s metrics endpoint', () => {
  it('exposes the Tatum requests and job durations this process recorded', async () => {
    recordTatumRequest({ route: '/v3/subscription', method: 'POST', status: 429, durationMs: 12 });
    recordJobDuration('tatum.create-virtual-account', 'completed', 250);
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/tatum_requests_total\{route="\/v3\/subscription",method="POST",status="429"\} 1/);
    expect(text).toMatch(/job_duration_seconds_count\{queue="tatum.create-virtual-account",outcome="completed"\} 1/);
  });

  it('serves nothing else', async () => {
    expect((await fetch(`${url}/`)).status).toBe(404);
  });
});
