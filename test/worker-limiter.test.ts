// QUEUE_MAX_JOBS per QUEUE_INTERVAL holds across worker processes: two real processes, five jobs at
// once each, a limit of 10 per second: no one-second window sees more than 10 job starts together.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBoss, type PgBoss } from '../jobs/boss.ts';
import { parseConfig } from '../jobs/config.ts';
import { createLogger } from '../jobs/logger.ts';
import { QUEUES, createQueues } from '../jobs/queues.ts';
import { resolveSecrets } from '../jobs/secrets.ts';
import { createTestDatabase } from './helpers/database.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const JOBS = 35;
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let dataDir: string;
let boss: PgBoss;
const children: ChildProcess[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = mkdtempSync(path.join(tmpdir(), 'limiter-'));
  await database.query(`create table job_starts (job_id uuid not null, pid int not null, started_at timestamptz not null default clock_timestamp())`);
});
afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }
  await boss?.stop({ graceful: false });
  await database.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function startRecordingWorker(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/recording-worker.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  expect(chunk.toString()).toBe('ready\n');
  return child;
}

describe('the job limiter', () => {
  it('two worker processes together start at most QUEUE_MAX_JOBS per QUEUE_INTERVAL', async () => {
    const env = {
      DATABASE_URL: database.url,
      DATA_DIR: dataDir,
      ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      QUEUE_MAX_JOBS: '10',
      QUEUE_INTERVAL: '1000',
      QUEUE_CONCURRENCY: '5',
    };
    const config = resolveSecrets(parseConfig(env), createLogger({ level: 'silent' }));
    boss = createBoss(database.handle, config, createLogger({ level: 'silent' }), { supervise: false });
    await boss.start();
    await createQueues(boss, config);
    for (let i = 0; i < JOBS; i++) {
      const userId = randomUUID();
      await boss.send(QUEUES.provision, { userId }, { singletonKey: userId });
    }

    const workers = await Promise.all([startRecordingWorker(env), startRecordingWorker(env)]);
    const deadline = Date.now() + 20_000;
    let starts: Array<{ job_id: string; pid: number; at: number }> = [];
    while (starts.length < JOBS) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const { rows } = await database.query<{ job_id: string; pid: number; at: string }>(
        `select job_id, pid, extract(epoch from started_at) * 1000 as at from job_starts order by started_at`,
      );
      starts = rows.map((r) => ({ ...r, at: Number(r.at) }));
    }

    expect(new Set(starts.map((s) => s.job_id)).size).toBe(JOBS); // no job ran twice
    expect(new Set(starts.map((s) => s.pid))).toEqual(new Set(workers.map((w) => w.pid)));
    // Any 11 consecutive starts span at least a full interval: no window [t, t + 1 s) holds 11.
    const spans = starts.slice(10).map((s, i) => s.at - starts[i]!.at);
    console.info(`narrowest window holding 11 starts: ${Math.min(...spans).toFixed(1)} ms`);
    expect(Math.min(...spans)).toBeGreaterThanOrEqual(1000);
  });
});
