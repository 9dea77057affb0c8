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

  it('answers an unexpected failure with a 500 whose message names no query or parameter', async () => {
    await app.database.query('alter table verification_codes rename to verification_codes_away');
    try {
      const res = await fetch(`${app.url}/trpc/auth.register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ json: { email: 'leak-check@example.com' } }),
      });
      expect(res.status).toBe(500);
      const text = await res.text();
      expect(text).toContain('Internal server error');
      expect(text).not.toMatch(/leak-check|verification_codes|insert|select/i);
    } finally {
      await app.database.query('alter table verification_codes_away rename to verification_codes');
    }
  });
});
