import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.ts';

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(() => app.stop());

describe('the HTTP server', () => {
  it('answers /healthz', async () => {
    const res = await fetch(`${app.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('serves tRPC under /trpc with superjson', async () => {
    const res = await fetch(`${app.url}/trpc/system.info`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ result: { data: { json: { mode: 'sandbox', database: 'postgres' } } } });
  });

  it('answers 404 for an unknown route and for an unknown procedure', async () => {
    expect((await fetch(`${app.url}/nope`)).status).toBe(404);
    expect((await fetch(`${app.url}/trpc/system.nope`)).status).toBe(404);
  });
});
