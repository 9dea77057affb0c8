// The embedded sandbox (`npm start` with nothing configured): PGlite, the worker inside the server,
// the log transport as the mailbox a developer reads, and the sandbox mailbox without an admin token.
// The live-mode rule for the mailbox is checked here too: it does not exist there.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TRPCError } from '@trpc/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../jobs/config.ts';
import { QUEUES } from '../jobs/queues.ts';
import { startApp, type RunningApp } from '../server/app.ts';
import { appRouter } from '../server/routers/index.ts';
import { createCallerFactory } from '../server/trpc.ts';
import { captureLogs } from './helpers/logs.ts';
import { trpcClient } from './helpers/trpc.ts';

const dataDir = mkdtempSync(path.join(tmpdir(), 'embedded-'));
const logs = captureLogs('info');
let app: RunningApp;

beforeAll(async () => {
  app = await startApp(parseConfig({ DATA_DIR: dataDir, PORT: '0' }), logs.log);
});
afterAll(async () => {
  await app.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function until<T>(probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met before the deadline');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('the embedded sandbox', () => {
  it('register → code in the log and the mailbox → verify → provisioning job run by the in-process worker', async () => {
    expect(app.services.config.database).toBe('pglite');
    const client = trpcClient(app.url);
    await client.auth.register.mutate({ email: 'dev@example.com' });

    const mailed = await until(() => logs.lines().find((l) => l.queue === QUEUES.emailSend && l.code !== undefined));
    expect(mailed).toMatchObject({ to: 'dev@example.com', code: expect.stringMatching(/^\d{6}$/), jobId: expect.any(String) });
    // No admin token needed here: the embedded sandbox is a single developer's localhost.
    await expect(client.auth.sandboxMailbox.query({ email: 'dev@example.com' })).resolves.toEqual({ email: 'dev@example.com', code: mailed.code });

    const { jobId } = await client.auth.verify.mutate({ email: 'dev@example.com', code: mailed.code as string });
    await until(() => logs.lines().find((l) => l.jobId === jobId && l.msg === 'job completed'));
  });

  it('has no sandbox mailbox in live mode', async () => {
    const live = { ...app.services.config, mode: 'live' as const };
    const caller = createCallerFactory(appRouter)({ ...app.services, config: live, bearerToken: live.ADMIN_TOKEN });
    const err = await caller.auth.sandboxMailbox({ email: 'dev@example.com' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TRPCError);
    expect(err).toMatchObject({ code: 'NOT_FOUND', message: 'No such procedure in live mode.' });
  });
});
