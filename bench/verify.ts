// `npm run bench:verify`: how fast auth.verify commits "user verified + provisioning job" over HTTP,
// against what Postgres itself does with a transaction of the same shape (pgbench), and how soon a
// worker starts a job after its commit. Runs on a fresh database on the local Postgres, dropped after.
//
// Users and their codes are written straight into the database (the code hash computed as the server
// does), so the measured loop is auth.verify alone, not registration and mail. The server runs as its
// own process; a second pass calls verify() in-process to separate the HTTP/tRPC cost from the
// transaction's.
//
// Flags (npm run bench:verify -- --clients 16 ...): --admin-url (default postgres://postgres@127.0.0.1:5432/postgres),
// --clients (16), --verifies (2000), --pgbench-seconds (10), --pickups (300).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { openDatabase, type DatabaseHandle } from '../db/client.ts';
import { migrateDatabase } from '../db/migrate.ts';
import { bossDb, createBoss } from '../jobs/boss.ts';
import { parseConfig } from '../jobs/config.ts';
import { createLogger } from '../jobs/logger.ts';
import { QUEUES } from '../jobs/queues.ts';
import { resolveSecrets, type RuntimeConfig } from '../jobs/secrets.ts';
import { startWorker } from '../jobs/worker.ts';
import { verify } from '../server/auth/verify.ts';
import { CODE, createBenchDatabase, DEFAULT_ADMIN_URL, isMain, parseFlags, percentile, request, seedUsers, startServer, stopProcess, trpcInput } from './lib.ts';

const count = (fallback: number) => z.coerce.number().int().positive().default(fallback);

export const VerifyFlags = z.object({
  'admin-url': z.url({ protocol: /^postgres(ql)?$/ }).default(DEFAULT_ADMIN_URL),
  clients: count(16),
  verifies: count(2000),
  'pgbench-seconds': count(10),
  pickups: count(300),
});
export type VerifyOptions = z.infer<typeof VerifyFlags>;

export interface VerifyResults {
  http: { perSecond: number; p50: number; p99: number };
  inProcessPerSecond: number;
  /** pgbench runs before and after the verify passes, and their mean. */
  pgbench: { before: number; after: number; mean: number };
  pickup: { p50: number; p99: number };
}

async function benchVerify(url: string, emails: string[], clients: number): Promise<VerifyResults['http']> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const target = new URL(`${url}/trpc/auth.verify`);
  const latencies: number[] = [];
  let next = 0;
  const client = async () => {
    while (next < emails.length) {
      const email = emails[next++]!;
      const started = performance.now();
      const { status } = await request(agent, target, { body: trpcInput({ email, code: CODE }) });
      if (status !== 200) throw new Error(`auth.verify answered ${status}`);
      latencies.push(performance.now() - started);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: clients }, client));
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { perSecond: emails.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

/** The same verifies called in-process (no HTTP, no tRPC): what the transaction alone costs from Node. */
async function benchVerifyInProcess(handle: DatabaseHandle, config: RuntimeConfig, emails: string[], clients: number): Promise<number> {
  const log = createLogger({ level: 'silent' });
  const boss = createBoss(handle, config, log, { supervise: false });
  await boss.start();
  const services = { config, db: handle.db, boss, log };
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < emails.length) await verify(services, { email: emails[next++]!, code: CODE });
    }),
  );
  const perSecond = emails.length / ((performance.now() - started) / 1000);
  await boss.stop({ graceful: false });
  return perSecond;
}

/**
 * pgbench at the same concurrency, one transaction of the same shape as auth.verify's core: update one
 * user row, insert one job into the same pg-boss queue with its options (and the same NOTIFY).
 */
async function benchPgbench(databaseUrl: string, users: number, options: VerifyOptions): Promise<number> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgbench-'));
  const script = path.join(dir, 'verify.sql');
  writeFileSync(
    script,
    `\\set n random(1, ${users})
BEGIN;
UPDATE users SET email_verified_at = now() WHERE email = 'pgbench-' || :n || '@bench.invalid';
WITH ins AS (
  INSERT INTO pgboss.job (id, name, data, singleton_key, expire_seconds, deletion_seconds, keep_until,
                          retry_limit, retry_delay, retry_backoff, policy, dead_letter, heartbeat_seconds)
  SELECT gen_random_uuid(), q.name, jsonb_build_object('userId', gen_random_uuid()), gen_random_uuid()::text,
         q.expire_seconds, q.deletion_seconds, now() + q.retention_seconds * interval '1s',
         q.retry_limit, q.retry_delay, q.retry_backoff, q.policy, q.dead_letter, q.heartbeat_seconds
  FROM pgboss.queue q WHERE q.name = '${QUEUES.provision}'
  RETURNING id)
SELECT pg_notify('pgboss_' || left(encode(sha224('pgboss'::bytea), 'hex'), 24), '${QUEUES.provision}') FROM ins;
COMMIT;
`,
  );
  const child = spawn('pgbench', ['-n', '-c', String(options.clients), '-j', '2', '-T', String(options['pgbench-seconds']), '-f', script, databaseUrl], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += String(chunk)));
  child.stderr.on('data', (chunk) => (output += String(chunk)));
  const [code] = (await once(child, 'exit')) as [number];
  rmSync(dir, { recursive: true, force: true });
  const tps = output.match(/tps = ([\d.]+) \(without initial connection time\)/);
  if (code !== 0 || !tps) throw new Error(`pgbench failed:\n${output}`);
  return Number(tps[1]);
}

/** Commit → handler start, one job at a time, through a real worker woken by NOTIFY. */
async function benchPickup(handle: DatabaseHandle, config: RuntimeConfig, pickups: number): Promise<VerifyResults['pickup']> {
  const log = createLogger({ level: 'silent' });
  const sender = createBoss(handle, config, log, { supervise: false });
  const workerBoss = createBoss(handle, config, log, { supervise: false });
  await sender.start();
  await workerBoss.start();
  await workerBoss.deleteAllJobs(QUEUES.provision); // the verify and pgbench runs' jobs
  let started: ((at: number) => void) | undefined;
  const worker = await startWorker(
    { boss: workerBoss, db: handle.db, config, log },
    { queues: [QUEUES.provision], handlers: { [QUEUES.provision]: async () => started?.(performance.now()) }, pollingIntervalSeconds: 300 },
  );
  const samples: number[] = [];
  for (let i = 0; i < pickups; i++) {
    const handlerStarted = new Promise<number>((resolve) => (started = resolve));
    const userId = randomUUID();
    await handle.db.transaction((tx) => sender.send(QUEUES.provision, { userId }, { db: bossDb(tx), singletonKey: userId }));
    const committed = performance.now();
    samples.push(Math.max(0, (await handlerStarted) - committed));
  }
  await worker.stop(5000);
  await Promise.all([sender.stop({ graceful: false }), workerBoss.stop({ graceful: false })]);
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

export async function runVerifyBench(options: VerifyOptions): Promise<VerifyResults> {
  const database = await createBenchDatabase(options['admin-url'], 'bench_verify');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'bench-verify-'));
  const env = {
    DATABASE_URL: database.url,
    DATA_DIR: dataDir,
    ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    DATABASE_POOL_MAX: String(options.clients + 4),
    // The limiter is not under test here; keep it out of the pickup path's way.
    QUEUE_MAX_JOBS: '1000000',
  };
  let server: ChildProcess | undefined;
  try {
    const config = resolveSecrets(parseConfig(env), createLogger({ level: 'silent' }));
    const handle = await openDatabase({ url: database.url, dataDir, poolMax: 10 });
    await migrateDatabase(handle);
    const started = await startServer(env); // creates the queues
    server = started.child;

    const emails = Array.from({ length: options.verifies }, (_, i) => `bench-${i}@bench.invalid`);
    const direct = Array.from({ length: options.verifies }, (_, i) => `direct-${i}@bench.invalid`);
    const pgbenchUsers = 10_000;
    await seedUsers(database.url, config, emails);
    await seedUsers(database.url, config, direct);
    await seedUsers(database.url, config, Array.from({ length: pgbenchUsers }, (_, i) => `pgbench-${i + 1}@bench.invalid`));

    // pgbench runs before and after the verify passes, so a machine whose load drifts (a shared CI box)
    // skews the ratio less; the table shows both runs and uses their mean.
    const before = await benchPgbench(database.url, pgbenchUsers, options);
    const overHttp = await benchVerify(started.url, emails, options.clients);
    await stopProcess(server);
    server = undefined;
    const inProcessPerSecond = await benchVerifyInProcess(handle, config, direct, options.clients);
    const after = await benchPgbench(database.url, pgbenchUsers, options);
    const pickup = await benchPickup(handle, config, options.pickups);
    await handle.close();
    return { http: overHttp, inProcessPerSecond, pgbench: { before, after, mean: (before + after) / 2 }, pickup };
  } finally {
    server?.kill('SIGKILL');
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export function verifyReport(r: VerifyResults): string {
  const row = (label: string, value: string, target = '') => `${label.padEnd(40)}${value.padEnd(40)}${target}`;
  return [
    row('measure', 'result', 'target'),
    row('auth.verify over HTTP', `${r.http.perSecond.toFixed(0)} verifies/s`),
    row('  latency p50 / p99', `${r.http.p50.toFixed(1)} / ${r.http.p99.toFixed(1)} ms`),
    row('auth.verify in-process (no HTTP)', `${r.inProcessPerSecond.toFixed(0)} verifies/s`),
    row('pgbench, same transaction shape', `${r.pgbench.mean.toFixed(0)} tps (${r.pgbench.before.toFixed(0)} before, ${r.pgbench.after.toFixed(0)} after)`),
    row('ratio verify over HTTP / pgbench', (r.http.perSecond / r.pgbench.mean).toFixed(2), '>= 0.5'),
    row('ratio verify in-process / pgbench', (r.inProcessPerSecond / r.pgbench.mean).toFixed(2)),
    row('pickup, commit -> handler start, p50', `${r.pickup.p50.toFixed(2)} ms`, '<= 5 ms'),
    row('pickup, commit -> handler start, p99', `${r.pickup.p99.toFixed(2)} ms`, '<= 25 ms'),
  ].join('\n');
}

export const verifyHeadline = (options: VerifyOptions) =>
  `bench:verify: ${options.clients} concurrent clients, ${options.verifies} verifies over HTTP, pgbench ${options['pgbench-seconds']} s, ${options.pickups} pickups`;

if (isMain(import.meta)) {
  const options = parseFlags(VerifyFlags);
  console.log(verifyHeadline(options));
  console.log(`\n${verifyReport(await runVerifyBench(options))}`);
}
