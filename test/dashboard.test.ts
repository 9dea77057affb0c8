// `npm run dashboard` against the test database, loaded in headless Chromium (Debian's `chromium`,
// installed by .ci/run): the provisioning queue is listed, and its failed job is shown. Without
// Chromium this fails rather than skips, so CI cannot pass it by accident.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUEUES } from '../jobs/queues.ts';
import { createTestDatabase } from './helpers/database.ts';
import { ADMIN_TOKEN, freePort, startQueues } from './helpers/operations.ts';

const CHROMIUM = '/usr/bin/chromium';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let boss: PgBoss;
let dashboard: ChildProcess | undefined;
let browser: Browser | undefined;
let dataDir: string;
let url: string;
let failedJob: string;

beforeAll(async () => {
  database = await createTestDatabase();
  boss = await startQueues(database);
  failedJob = (await boss.send(QUEUES.provision, { userId: crypto.randomUUID() }, { retryLimit: 0 }))!;
  const [job] = await boss.fetch(QUEUES.provision);
  expect(job?.id).toBe(failedJob);
  await boss.fail(QUEUES.provision, failedJob, { message: 'Tatum said no (dashboard test)' });

  const port = await freePort();
  dataDir = mkdtempSync(path.join(tmpdir(), 'dashboard-'));
  const child = spawn(process.execPath, ['--import', 'tsx', 'jobs/dashboard.ts', '--port', String(port)], {
    env: { PATH: process.env.PATH, DATABASE_URL: database.url, ADMIN_TOKEN, DATA_DIR: dataDir, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  dashboard = child;
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('pg-boss dashboard listening')) resolve();
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    child.once('exit', (code) => reject(new Error(`dashboard exited with ${code}: ${output}`)));
  });
  url = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await browser?.close();
  if (dashboard && dashboard.exitCode === null) {
    const exited = once(dashboard, 'exit');
    dashboard.kill('SIGTERM');
    await exited;
  }
  await boss.stop({ graceful: false });
  await database.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('npm run dashboard', () => {
  it('asks for the admin credentials', async () => {
    expect((await fetch(url)).status).toBe(401);
    const wrong = await fetch(url, { headers: { authorization: `Basic ${Buffer.from('admin:wrong').toString('base64')}` } });
    expect(wrong.status).toBe(401);
  });

  it('shows the provisioning queue and its failed job in headless Chromium', async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`).toBe(true);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    const page = await browser.newPage({ httpCredentials: { username: 'admin', password: ADMIN_TOKEN } });

    await page.goto(`${url}/queues`);
    await page.getByText(QUEUES.provision, { exact: true }).first().waitFor();

    await page.goto(`${url}/queues/${QUEUES.provision}?state=failed`);
    const row = page.getByText(failedJob.slice(0, 8)).first();
    await row.waitFor();
    expect(await page.content()).toContain(failedJob.slice(0, 8));
  });
});
