// Helpers for the operations tests: a started pg-boss, jobs in known states, an app with captured logs,
// a free port, and a redis-server of a test's own.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { PgBoss } from 'pg-boss';
import type { DatabaseHandle } from '../../db/client.ts';
import { createBoss } from '../../jobs/boss.ts';
import { parseConfig, type Config } from '../../jobs/config.ts';
import { createLogger } from '../../jobs/logger.ts';
import { createQueues } from '../../jobs/queues.ts';
import { startApp, type RunningApp } from '../../server/app.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';
import { captureLogs, type CapturedLogs } from './logs.ts';

export const ADMIN_TOKEN = 'operations-test-admin-token-0123456789';

export interface OperationsApp extends RunningApp {
  database: TestDatabase;
  logs: CapturedLogs;
  stop(): Promise<void>;
}

/** The real server on a fresh database, Postgres mode, with the test admin token and captured logs. */
export async function startOperationsApp(env: Record<string, string> = {}): Promise<OperationsApp> {
  const database = await createTestDatabase();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'ops-'));
  // Unredacted: observability.test.ts proves the admin token never reaches a log line at all.
  const logs = captureLogs('debug', { redact: false });
  const config = parseConfig({ DATABASE_URL: database.url, PORT: '0', DATA_DIR: dataDir, ADMIN_TOKEN, ...env });
  const app = await startApp(config, logs.log);
  return {
    ...app,
    database,
    logs,
    async stop() {
      await app.close();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export const DEPOSIT_QUEUE = 'tatum.deposit-received';

/** pg-boss started on the test database with every queue created; no supervisor, so jobs stay as a test leaves them. */
export async function startQueues(database: TestDatabase & { handle: DatabaseHandle }, config: Config = parseConfig({ DATABASE_URL: database.url })): Promise<PgBoss> {
  const boss = createBoss(database.handle, config, createLogger({ level: 'silent' }), { supervise: false });
  await boss.start();
  await createQueues(boss, config);
  return boss;
}

/** Sends one job and takes it, so it is active; returns its id. */
async function started(boss: PgBoss, queue: string, options: Parameters<PgBoss['send']>[2] = {}): Promise<string> {
  const id = await boss.send(queue, { seeded: true }, options);
  const [job] = await boss.fetch(queue);
  if (!job || job.id !== id) throw new Error(`expected to fetch ${id}, got ${job?.id}`);
  return id;
}

export interface SeededJobs {
  active: string;
  completed: string;
  failed: string;
  retryingDelayed: string;
  retryingWaiting: string;
  waiting: string[];
  delayed: string;
}

/**
 * Jobs of the deposit queue (standard policy, dead letter queue) in every class, one class at a time
 * so each fetch can only take the job just sent: 3 waiting (one a retry), 2 delayed (one a retry's
 * backoff), 1 active, 1 completed, 1 failed with its copy dead-lettered.
 */
export async function seedJobs(boss: PgBoss, queue = DEPOSIT_QUEUE): Promise<SeededJobs> {
  const active = await started(boss, queue);
  const completed = await started(boss, queue);
  await boss.complete(queue, completed);
  const failed = await started(boss, queue, { retryLimit: 0 });
  await boss.fail(queue, failed, { message: 'seeded final failure' });
  const retryingDelayed = await started(boss, queue, { retryLimit: 1, retryDelay: 3600, retryBackoff: false });
  await boss.fail(queue, retryingDelayed, { message: 'seeded failure, backing off' });
  const retryingWaiting = await started(boss, queue, { retryLimit: 1, retryDelay: 0, retryBackoff: false });
  await boss.fail(queue, retryingWaiting, { message: 'seeded failure, due again' });
  const waiting = [(await boss.send(queue, { seeded: true }))!, (await boss.send(queue, { seeded: true }))!];
  const delayed = (await boss.send(queue, { seeded: true }, { startAfter: 3600 }))!;
  return { active, completed, failed, retryingDelayed, retryingWaiting, waiting, delayed };
}

export const SEEDED_COUNTS = {
  queueName: DEPOSIT_QUEUE,
  waiting: 3,
  active: 1,
  completed: 1,
  failed: 1,
  delayed: 2,
  retrying: 2,
  deadLettered: 1,
};

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** A redis-server child on `port`, nothing persisted; resolves once it accepts connections. */
export async function startRedisServer(port: number): Promise<RedisServer> {
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
}
