// The real worker process, `tsx jobs/run.ts email.send`, as a child: SIGTERM lets the active job
// finish and takes no new one, then exits 0; SIGKILL mid-job leaves the job to the heartbeat monitor,
// which hands it back for a retry within a minute. The active job is a mail held open by the SMTP sink.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBoss, type PgBoss } from '../jobs/boss.ts';
import { parseConfig } from '../jobs/config.ts';
import { createLogger } from '../jobs/logger.ts';
import { verificationEmailJob } from '../jobs/mailer.ts';
import { QUEUES, createQueues } from '../jobs/queues.ts';
import { resolveSecrets, type RuntimeConfig } from '../jobs/secrets.ts';
import { createTestDatabase } from './helpers/database.ts';
import { startSmtpSink, type SmtpSink } from './helpers/smtp-sink.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let dataDir: string;
let env: Record<string, string>;
let config: RuntimeConfig;
let boss: PgBoss;
const sinks: SmtpSink[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = mkdtempSync(path.join(tmpdir(), 'worker-stop-'));
  env = { DATABASE_URL: database.url, DATA_DIR: dataDir, ENCRYPTION_KEY: randomBytes(32).toString('hex'), LOG_LEVEL: 'info' };
  config = resolveSecrets(parseConfig(env), createLogger({ level: 'silent' }));
  boss = createBoss(database.handle, config, createLogger({ level: 'silent' }));
  await boss.start();
  await createQueues(boss, config);
});
afterAll(async () => {
  await boss.stop({ graceful: false });
  await Promise.all(sinks.map((s) => s.close()));
  await database.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

interface Worker {
  child: ChildProcess;
  exited: Promise<number | null>;
  /** Resolves with the first log line whose message matches. */
  logged(msg: string): Promise<Record<string, unknown>>;
}

async function startWorkerProcess(smtpUrl: string): Promise<Worker> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'jobs/run.ts', QUEUES.emailSend], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env, SMTP_URL: smtpUrl },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Array<Record<string, unknown>> = [];
  const watchers: Array<() => void> = [];
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const complete = buffered.split('\n');
    buffered = complete.pop()!;
    for (const line of complete) if (line.trim()) lines.push(JSON.parse(line));
    watchers.forEach((w) => w());
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const logged = (msg: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const line = lines.find((l) => l.msg === msg);
        if (line) resolve(line);
      };
      watchers.push(check);
      void exited.then(() => reject(new Error(`worker exited before logging "${msg}"`)));
      check();
    });
  await logged('worker started');
  return { child, exited, logged };
}

async function holdingSink(): Promise<SmtpSink> {
  const sink = await startSmtpSink({ hold: true });
  sinks.push(sink);
  return sink;
}

const sendMail = async (to: string) => (await boss.send(QUEUES.emailSend, verificationEmailJob(config, to, '123456')))!;
const stateOf = async (jobId: string) => (await database.query(`select state from pgboss.job where id = $1`, [jobId])).rows[0]!.state as string;

describe('the worker process', () => {
  it('on SIGTERM finishes the active job, takes no new one, and exits 0', async () => {
    const sink = await holdingSink();
    const worker = await startWorkerProcess(sink.url);
    const active = await sendMail('first@example.com');
    await sink.nextMessage(); // the job is inside the SMTP exchange, held open

    worker.child.kill('SIGTERM');
    await worker.logged('stopping: no new jobs, waiting for active ones');
    const later = await sendMail('second@example.com');
    expect(worker.child.exitCode).toBeNull();
    expect(await stateOf(active)).toBe('active');

    sink.release();
    expect(await worker.exited).toBe(0);
    expect(await stateOf(active)).toBe('completed');
    expect(await stateOf(later)).toBe('created');
    expect(sink.received.map((m) => m.to[0])).toEqual(['first@example.com']);
  });

  it('after SIGKILL mid-job, the job goes back for a retry within a minute (heartbeat)', async () => {
    await boss.deleteAllJobs(QUEUES.emailSend);
    const sink = await holdingSink();
    const worker = await startWorkerProcess(sink.url);
    const jobId = await sendMail('killed@example.com');
    await sink.nextMessage();
    worker.child.kill('SIGKILL');
    await worker.exited;
    const killedAt = Date.now();

    // This process's pg-boss runs the monitor pass, as any other worker or server would.
    for (;;) {
      if ((await stateOf(jobId)) === 'retry') break;
      expect(Date.now() - killedAt).toBeLessThan(60_000);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    console.info(`killed worker's job back in retry after ${((Date.now() - killedAt) / 1000).toFixed(1)} s`);
  }, 90_000);
});
