// `npm run bench:verify`: how fast auth.verify commits "user verified + provisioning job" over HTTP,
// against what Postgres itself does with a transaction of the same shape (pgbench), and how soon a
// worker starts a job after its commit. Runs on a fresh database on the local Postgres, dropped after.
//
// Users and their codes are written straight into the database (the code hash computed as the server
// does), so the measured loop is auth.verify alone, not registration and mail. The server runs as its
// own process; a second pass calls verify() in-process to separate the HTTP/tRPC cost from the
// transaction's.
//
// Knobs: BENCH_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres), BENCH_CLIENTS (16),
// BENCH_VERIFIES (2000), BENCH_PGBENCH_SECONDS (10), BENCH_PICKUPS (300).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openDatabase, type DatabaseHandle } from '../db/client.ts';
import { migrateDatabase } from '../db/migrate.ts';
import { bossDb, createBoss } from '../jobs/boss.ts';
import { parseConfig } from '../jobs/config.ts';
import { createLogger } from '../jobs/logger.ts';
import { createQueues, QUEUES } from '../jobs/queues.ts';
import { resolveSecrets, type RuntimeConfig } from '../jobs/secrets.ts';
import { startWorker } from '../jobs/worker.ts';
import { hashCode } from '../server/auth/codes.ts';
import { verify } from '../server/auth/verify.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const ADMIN_URL = process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 16);
const VERIFIES = Number(process.env.BENCH_VERIFIES ?? 2000);
const PGBENCH_SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 10);
const PICKUPS = Number(process.env.BENCH_PICKUPS ?? 300);
const CODE = '424242';

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/** Unverified users, each with the pending code CODE, stored as the server stores it. */
async function seedUsers(databaseUrl: string, config: RuntimeConfig, emails: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    for (let i = 0; i < emails.length; i += 1000) {
      const batch = emails.slice(i, i + 1000).map((email) => ({ id: randomUUID(), email }));
      const ids = batch.map((u) => u.id);
      await client.query(`insert into users (id, email) select * from unnest($1::uuid[], $2::text[])`, [ids, batch.map((u) => u.email)]);
      await client.query(
        `insert into verification_codes (user_id, code_hash, expires_at)
         select id, hash, now() + interval '1 hour' from unnest($1::uuid[], $2::text[]) as c(id, hash)`,
        [ids, batch.map((u) => hashCode(config, u.id, CODE))],
      );
    }
    await client.query('analyze');
  } finally {
    await client.end();
  }
}

async function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env, PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  for await (const chunk of child.stdout!) {
    output += String(chunk);
    const match = output.match(/"url":"(http:\/\/[^"]+)"/);
    if (match) {
      child.stdout!.resume(); // keep draining what the server logs from now on
      return { child, url: match[1]! };
    }
  }
  throw new Error(`the server exited before listening:\n${output}`);
}

/** POSTs one tRPC mutation on a kept-alive connection; node:http costs the client far less CPU than fetch. */
function post(agent: http.Agent, url: URL, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function benchVerify(url: string, emails: string[]): Promise<{ perSecond: number; p50: number; p99: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const target = new URL(`${url}/trpc/auth.verify`);
  const latencies: number[] = [];
  let next = 0;
  const client = async () => {
    while (next < emails.length) {
      const email = emails[next++]!;
      const started = performance.now();
      const status = await post(agent, target, JSON.stringify({ json: { email, code: CODE } }));
      if (status !== 200) throw new Error(`auth.verify answered ${status}`);
      latencies.push(performance.now() - started);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, client));
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { perSecond: emails.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

/** The same verifies called in-process (no HTTP, no tRPC): what the transaction alone costs from Node. */
async function benchVerifyInProcess(handle: DatabaseHandle, config: RuntimeConfig, emails: string[]): Promise<number> {
  const log = createLogger({ level: 'silent' });
  const boss = createBoss(handle, config, log, { supervise: false });
  await boss.start();
  const services = { config, db: handle.db, boss, log };
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
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
async function benchPgbench(databaseUrl: string, users: number): Promise<number> {
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
  const child = spawn('pgbench', ['-n', '-c', String(CLIENTS), '-j', '2', '-T', String(PGBENCH_SECONDS), '-f', script, databaseUrl], {
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
async function benchPickup(handle: DatabaseHandle, config: RuntimeConfig): Promise<{ p50: number; p99: number }> {
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
  for (let i = 0; i < PICKUPS; i++) {
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

const name = `bench_verify_${randomBytes(4).toString('hex')}`;
const databaseUrl = Object.assign(new URL(ADMIN_URL), { pathname: `/${name}` }).toString();
const dataDir = mkdtempSync(path.join(tmpdir(), 'bench-verify-'));
const env = {
  DATABASE_URL: databaseUrl,
  DATA_DIR: dataDir,
  ENCRYPTION_KEY: randomBytes(32).toString('hex'),
  DATABASE_POOL_MAX: String(CLIENTS + 4),
  // The limiter is not under test here; keep it out of the pickup path's way.
  QUEUE_MAX_JOBS: '1000000',
};
await admin(`create database ${name}`);
let server: ChildProcess | undefined;
try {
  const config = resolveSecrets(parseConfig(env), createLogger({ level: 'silent' }));
  const handle = await openDatabase({ url: databaseUrl, dataDir, poolMax: 10 });
  await migrateDatabase(handle);
  const started = await startServer(env); // creates the queues
  server = started.child;

  const emails = Array.from({ length: VERIFIES }, (_, i) => `bench-${i}@bench.invalid`);
  const direct = Array.from({ length: VERIFIES }, (_, i) => `direct-${i}@bench.invalid`);
  const pgbenchUsers = 10_000;
  await seedUsers(databaseUrl, config, emails);
  await seedUsers(databaseUrl, config, direct);
  await seedUsers(databaseUrl, config, Array.from({ length: pgbenchUsers }, (_, i) => `pgbench-${i + 1}@bench.invalid`));

  console.log(`bench:verify: ${CLIENTS} concurrent clients, ${VERIFIES} verifies over HTTP, pgbench ${PGBENCH_SECONDS} s, ${PICKUPS} pickups`);
  // pgbench runs before and after the verify passes, so a machine whose load drifts (a shared CI box)
  // skews the ratio less; the table shows both runs and uses their mean.
  const tpsBefore = await benchPgbench(databaseUrl, pgbenchUsers);
  const verify = await benchVerify(started.url, emails);
  server.kill('SIGTERM');
  await once(server, 'exit');
  server = undefined;
  const inProcess = await benchVerifyInProcess(handle, config, direct);
  const tpsAfter = await benchPgbench(databaseUrl, pgbenchUsers);
  const tps = (tpsBefore + tpsAfter) / 2;
  const pickup = await benchPickup(handle, config);
  await handle.close();

  const row = (label: string, value: string, target = '') => `${label.padEnd(40)}${value.padEnd(40)}${target}`;
  console.log(
    [
      '',
      row('measure', 'result', 'target'),
      row('auth.verify over HTTP', `${verify.perSecond.toFixed(0)} verifies/s`),
      row('  latency p50 / p99', `${verify.p50.toFixed(1)} / ${verify.p99.toFixed(1)} ms`),
      row('auth.verify in-process (no HTTP)', `${inProcess.toFixed(0)} verifies/s`),
      row('pgbench, same transaction shape', `${tps.toFixed(0)} tps (${tpsBefore.toFixed(0)} before, ${tpsAfter.toFixed(0)} after)`),
      row('ratio verify over HTTP / pgbench', (verify.perSecond / tps).toFixed(2), '>= 0.5'),
      row('ratio verify in-process / pgbench', (inProcess / tps).toFixed(2)),
      row('pickup, commit -> handler start, p50', `${pickup.p50.toFixed(2)} ms`, '<= 5 ms'),
      row('pickup, commit -> handler start, p99', `${pickup.p99.toFixed(2)} ms`, '<= 25 ms'),
    ].join('\n'),
  );
} finally {
  server?.kill('SIGKILL');
  await admin(`drop database if exists ${name} with (force)`);
  rmSync(dataDir, { recursive: true, force: true });
}
