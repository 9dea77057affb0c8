// A database outage is not the client's fault and not a bug: every tRPC procedure that needs the
// database answers 503 SERVICE_UNAVAILABLE with a message that says so (no SQL, no parameters), at
// once rather than after a hang, and works again as soon as the database is back.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASE_UNAVAILABLE_MESSAGE, isDatabaseUnavailable } from '../db/unavailable.ts';
import { startTestApp, type TestApp } from './helpers/app.ts';
import { setDatabaseAvailable } from './helpers/outage.ts';

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(() => app.stop());

const post = (path: string, input: unknown, headers: Record<string, string> = {}) =>
  fetch(`${app.url}/trpc/${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ json: input }) });

describe('tRPC while the database is down', () => {
  it('answers 503 with a plain message, then works again when the database is back', async () => {
    await setDatabaseAvailable(app.database.name, false);
    try {
      const answers = [
        await post('auth.register', { email: 'outage@example.com' }),
        await post('auth.verify', { email: 'outage@example.com', code: '123456' }),
        await fetch(`${app.url}/trpc/wallet.accounts`, { headers: { authorization: 'Bearer some-session-token' } }),
      ];
      for (const res of answers) {
        expect(res.status).toBe(503);
        const { error } = (await res.json()) as { error: { json: { message: string; data: unknown } } };
        expect(error.json.message).toBe(DATABASE_UNAVAILABLE_MESSAGE);
        expect(error.json.data).toMatchObject({ code: 'SERVICE_UNAVAILABLE', httpStatus: 503 });
        expect(JSON.stringify(error)).not.toMatch(/select|insert|outage@example\.com|some-session-token/i);
      }
    } finally {
      await setDatabaseAvailable(app.database.name, true);
    }
    expect((await post('auth.register', { email: 'outage@example.com' })).status).toBe(200);
  });

  it('is only for an unreachable database: a refused query stays a 500 (a bug), a client mistake its 4xx', async () => {
    const unique = new pg.DatabaseError('duplicate key value violates unique constraint', 0, 'error');
    unique.code = '23505';
    const terminated = new pg.DatabaseError('terminating connection due to administrator command', 0, 'error');
    terminated.code = '57P01';
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const wrapped = (cause: Error) => new Error('Failed query: select 1', { cause });

    expect(isDatabaseUnavailable(wrapped(refused))).toBe(true);
    expect(isDatabaseUnavailable(wrapped(terminated))).toBe(true);
    expect(isDatabaseUnavailable(wrapped(new Error('Connection terminated unexpectedly')))).toBe(true);
    expect(isDatabaseUnavailable(new Error('timeout exceeded when trying to connect'))).toBe(true);
    expect(isDatabaseUnavailable(wrapped(unique))).toBe(false);
    expect(isDatabaseUnavailable(new Error('boom'))).toBe(false);
    expect(isDatabaseUnavailable('ECONNREFUSED')).toBe(false);
  });
});
