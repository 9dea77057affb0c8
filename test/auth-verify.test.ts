// auth.register / auth.verify over real HTTP on real Postgres: the one-transaction guarantee (with
// rollback proofs both ways), the race of 50 verifies, the attempt limit, sessions, and that codes
// and tokens never reach a log or a job payload in clear.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TRPCClientError } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../jobs/config.ts';
import { QUEUES } from '../jobs/queues.ts';
import { startApp, type RunningApp } from '../server/app.ts';
import type { AppRouter } from '../server/routers/index.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { captureLogs } from './helpers/logs.ts';
import { trpcClient } from './helpers/trpc.ts';

let app: RunningApp;
let database: TestDatabase;
let dataDir: string;
// Without the project's redaction: a secret that reaches a log by any path shows here.
const logs = captureLogs('trace', { redact: false });

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = mkdtempSync(path.join(tmpdir(), 'auth-'));
  const config = parseConfig({ DATABASE_URL: database.url, PORT: '0', DATA_DIR: dataDir, DATABASE_POOL_MAX: '20' });
  app = await startApp(config, logs.log);
});
afterAll(async () => {
  await app.close();
  await database.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

const client = (token?: string) => trpcClient(app.url, token);

const admin = () => client(app.services.config.ADMIN_TOKEN);

async function registered(email: string): Promise<{ userId: string; code: string }> {
  const { userId } = await client().auth.register.mutate({ email });
  const { code } = await admin().auth.sandboxMailbox.query({ email });
  return { userId, code };
}

async function errorOf(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  const err = await promise.then(
    () => expect.fail('expected the call to fail'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TRPCClientError);
  const e = err as TRPCClientError<AppRouter>;
  return { code: e.data?.code ?? '', message: e.message };
}

const provisionJobsOf = async (userId: string) =>
  (await database.query(`select id from pgboss.job where name = $1 and data->>'userId' = $2`, [QUEUES.provision, userId])).rows;
const isVerified = async (userId: string) =>
  (await database.query(`select email_verified_at is not null as v from users where id = $1`, [userId])).rows[0]!.v as boolean;
const sessionsOf = async (userId: string) =>
  Number((await database.query(`select count(*) from sessions where user_id = $1`, [userId])).rows[0]!.count);

describe('auth.register', () => {
  it('creates a lower-cased user and mails a code that is stored hashed and travels encrypted', async () => {
    const { userId } = await client().auth.register.mutate({ email: '  Alice@Example.COM ' });
    const [user] = (await database.query(`select email, email_verified_at from users where id = $1`, [userId])).rows;
    expect(user).toEqual({ email: 'alice@example.com', email_verified_at: null });

    const { code } = await admin().auth.sandboxMailbox.query({ email: 'alice@example.com' });
    expect(code).toMatch(/^\d{6}$/);
    const [stored] = (await database.query(`select code_hash, attempts from verification_codes where user_id = $1`, [userId])).rows;
    expect(stored!.attempts).toBe(0);
    expect(stored!.code_hash).not.toContain(code);
    const [job] = (await database.query(`select data from pgboss.job where name = $1 and data->>'to' = $2`, [QUEUES.emailSend, 'alice@example.com'])).rows;
    expect(Object.keys(job!.data).sort()).toEqual(['codeEncrypted', 'template', 'to']);
    expect(JSON.stringify(job!.data)).not.toContain(code);
  });

  it('issues a fresh code to an unverified user, replacing the old one', async () => {
    const first = await registered('again@example.com');
    const second = await registered('again@example.com');
    expect(second.userId).toBe(first.userId);
    const codes = (await database.query(`select count(*) from verification_codes where user_id = $1`, [first.userId])).rows[0]!.count;
    expect(Number(codes)).toBe(1);
    if (first.code !== second.code) {
      expect((await errorOf(client().auth.verify.mutate({ email: 'again@example.com', code: first.code }))).code).toBe('UNAUTHORIZED');
    }
    await expect(client().auth.verify.mutate({ email: 'again@example.com', code: second.code })).resolves.toMatchObject({ userId: first.userId });
  });

  it('answers a verified address with the same shape and sends nothing', async () => {
    const { userId, code } = await registered('verified@example.com');
    await client().auth.verify.mutate({ email: 'verified@example.com', code });
    const mails = async () => Number((await database.query(`select count(*) from pgboss.job where name = $1 and data->>'to' = $2`, [QUEUES.emailSend, 'verified@example.com'])).rows[0]!.count);
    const before = await mails();
    await expect(client().auth.register.mutate({ email: 'verified@example.com' })).resolves.toEqual({ userId });
    expect(await mails()).toBe(before);
  });
});

describe('auth.verify', () => {
  it('verifies, opens a session and schedules exactly one provisioning job, in one transaction', async () => {
    const { userId, code } = await registered('bob@example.com');
    const result = await client().auth.verify.mutate({ email: 'BOB@example.com', code });
    expect(result).toEqual({ userId, sessionToken: expect.any(String), jobId: expect.any(String) });
    expect(await isVerified(userId)).toBe(true);
    expect(await provisionJobsOf(userId)).toEqual([{ id: result.jobId }]);

    await expect(client(result.sessionToken).auth.me.query()).resolves.toEqual({ id: userId, email: 'bob@example.com' });
    const [session] = (await database.query(`select token_hash from sessions where user_id = $1`, [userId])).rows;
    expect(session!.token_hash).not.toBe(result.sessionToken);
  });

  it('returns a new session and no new job for an already verified user', async () => {
    const { userId, code } = await registered('carol@example.com');
    const first = await client().auth.verify.mutate({ email: 'carol@example.com', code });
    const again = await client().auth.verify.mutate({ email: 'carol@example.com', code });
    expect(again).toEqual({ userId, sessionToken: expect.any(String), jobId: null });
    expect(again.sessionToken).not.toBe(first.sessionToken);
    expect(await provisionJobsOf(userId)).toHaveLength(1);
  });

  it('50 concurrent verifies of one user: one verification, one job, a session for each', async () => {
    const { userId, code } = await registered('race@example.com');
    const results = await Promise.all(Array.from({ length: 50 }, () => client().auth.verify.mutate({ email: 'race@example.com', code })));
    expect(results.filter((r) => r.jobId !== null)).toHaveLength(1);
    expect(new Set(results.map((r) => r.sessionToken)).size).toBe(50);
    expect(await provisionJobsOf(userId)).toHaveLength(1);
    expect(await sessionsOf(userId)).toBe(50);
  });

  it('refuses the 6th attempt even with the right code, and counts only wrong guesses', async () => {
    const { userId, code } = await registered('mallory@example.com');
    const wrong = code === '000000' ? '000001' : '000000';
    for (let attempt = 1; attempt <= 5; attempt++) {
      const err = await errorOf(client().auth.verify.mutate({ email: 'mallory@example.com', code: wrong }));
      expect(err.code).toBe('UNAUTHORIZED');
      expect(err.message).toMatch(/Wrong code/);
    }
    const refused = await errorOf(client().auth.verify.mutate({ email: 'mallory@example.com', code }));
    expect(refused).toEqual({ code: 'TOO_MANY_REQUESTS', message: expect.stringMatching(/Too many wrong attempts/) });
    const [row] = (await database.query(`select attempts from verification_codes where user_id = $1`, [userId])).rows;
    expect(row!.attempts).toBe(5);
    expect(await isVerified(userId)).toBe(false);
    expect(await provisionJobsOf(userId)).toEqual([]);
    expect(await sessionsOf(userId)).toBe(0);
  });

  it('refuses an expired code with BAD_REQUEST and writes nothing', async () => {
    const { userId, code } = await registered('late@example.com');
    await database.query(`update verification_codes set expires_at = now() - interval '1 second' where user_id = $1`, [userId]);
    const err = await errorOf(client().auth.verify.mutate({ email: 'late@example.com', code }));
    expect(err).toEqual({ code: 'BAD_REQUEST', message: expect.stringMatching(/expired/) });
    const [row] = (await database.query(`select attempts from verification_codes where user_id = $1`, [userId])).rows;
    expect(row!.attempts).toBe(0);
    expect(await isVerified(userId)).toBe(false);
  });

  it('answers an unknown address like a wrong code', async () => {
    const err = await errorOf(client().auth.verify.mutate({ email: 'nobody@example.com', code: '123456' }));
    expect(err).toEqual({ code: 'UNAUTHORIZED', message: 'Wrong code.' });
  });

  it('rolls everything back when the transaction fails after the user update (session insert fails)', async () => {
    const { userId, code } = await registered('rollback1@example.com');
    await database.query(`
      create function refuse_session() returns trigger language plpgsql as $$
      begin raise exception 'test: session insert refused'; end $$`);
    await database.query(`
      create trigger refuse_session before insert on sessions for each row
      when (new.user_id = '${userId}') execute function refuse_session()`);
    try {
      expect((await errorOf(client().auth.verify.mutate({ email: 'rollback1@example.com', code }))).code).toBe('INTERNAL_SERVER_ERROR');
      expect(await isVerified(userId)).toBe(false);
      expect(await provisionJobsOf(userId)).toEqual([]);
    } finally {
      await database.query(`drop trigger refuse_session on sessions; drop function refuse_session()`);
    }
    // Nothing was consumed: the same code still verifies.
    await expect(client().auth.verify.mutate({ email: 'rollback1@example.com', code })).resolves.toMatchObject({ jobId: expect.any(String) });
  });

  it('rolls everything back when the job insert fails', async () => {
    const { userId, code } = await registered('rollback2@example.com');
    await database.query(`
      create function refuse_job() returns trigger language plpgsql as $$
      begin raise exception 'test: job insert refused'; end $$`);
    await database.query(`
      create trigger refuse_job before insert on pgboss.job for each row
      when (new.name = '${QUEUES.provision}' and new.data->>'userId' = '${userId}') execute function refuse_job()`);
    try {
      expect((await errorOf(client().auth.verify.mutate({ email: 'rollback2@example.com', code }))).code).toBe('INTERNAL_SERVER_ERROR');
      expect(await isVerified(userId)).toBe(false);
      expect(await sessionsOf(userId)).toBe(0);
      expect(await provisionJobsOf(userId)).toEqual([]);
    } finally {
      await database.query(`drop trigger refuse_job on pgboss.job; drop function refuse_job()`);
    }
    await expect(client().auth.verify.mutate({ email: 'rollback2@example.com', code })).resolves.toMatchObject({ jobId: expect.any(String) });
  });
});

describe('sessions and admin-only procedures', () => {
  it('refuses user procedures without a valid session token', async () => {
    expect((await errorOf(client().auth.me.query())).code).toBe('UNAUTHORIZED');
    expect((await errorOf(client('not-a-token').auth.me.query())).code).toBe('UNAUTHORIZED');
  });

  it('refuses an expired session', async () => {
    const { userId, code } = await registered('expired-session@example.com');
    const { sessionToken } = await client().auth.verify.mutate({ email: 'expired-session@example.com', code });
    await database.query(`update sessions set expires_at = now() - interval '1 second' where user_id = $1`, [userId]);
    expect((await errorOf(client(sessionToken).auth.me.query())).code).toBe('UNAUTHORIZED');
  });

  it('keeps the sandbox mailbox behind the admin token outside the embedded sandbox', async () => {
    await registered('mailbox@example.com');
    expect((await errorOf(client().auth.sandboxMailbox.query({ email: 'mailbox@example.com' }))).code).toBe('UNAUTHORIZED');
    expect((await errorOf(admin().auth.sandboxMailbox.query({ email: 'never-registered@example.com' }))).code).toBe('NOT_FOUND');
  });
});

describe('invalid input', () => {
  const post = (procedure: string, body: string) =>
    fetch(`${app.url}/trpc/auth.${procedure}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

  it.each([
    ['register', 'a number for email', { email: 5 }, /email/],
    ['register', 'no email at all', { email: 'not an email' }, /email/],
    ['register', 'a 10 kB email', { email: `${'a'.repeat(10_000)}@example.com` }, /email/],
    ['register', 'an unknown field', { email: 'ok@example.com', admin: true }, /admin/],
    ['register', 'a string for the object', 'just a string', /object/],
    ['register', 'null for the object', null, /object/],
    ['verify', 'a number for the code', { email: 'ok@example.com', code: 123456 }, /code/],
    ['verify', 'five digits', { email: 'ok@example.com', code: '12345' }, /6-digit/],
    ['verify', 'a 10 kB code', { email: 'ok@example.com', code: '1'.repeat(10_000) }, /6-digit/],
    ['verify', 'no code', { email: 'ok@example.com' }, /code/],
  ])('%s with %s is a 400 with zod message', async (procedure, _label, input, message) => {
    const res = await post(procedure, JSON.stringify({ json: input }));
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { json: { message: string; data: { code: string } } } };
    expect(body.error.json.data.code).toBe('BAD_REQUEST');
    expect(body.error.json.message).toMatch(message);
  });

  it('answers a body that is not JSON with a 400', async () => {
    expect((await post('register', '{"json": {')).status).toBe(400);
  });
});

describe('secrets', () => {
  it('never logs a code or a session token', async () => {
    const { code } = await registered('secret@example.com');
    const { sessionToken } = await client().auth.verify.mutate({ email: 'secret@example.com', code });
    await errorOf(client().auth.verify.mutate({ email: 'secret@example.com', code: code === '999999' ? '999998' : '999999' }));
    const text = logs.text();
    expect(text.length).toBeGreaterThan(0);
    expect(text).not.toMatch(new RegExp(`(?<![0-9a-f])${code}(?![0-9a-f])`));
    expect(text).not.toContain(sessionToken);
  });
});
