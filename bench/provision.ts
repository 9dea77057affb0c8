// `npm run bench:provision`: verify → all-ready through the real server and worker processes, against
// the Tatum sandbox (its own process, as Tatum is) with latency L and a 429 limit of R requests/s, on a
// fresh database (dropped after).
//
// Runs, in order:
//   1. U verifies at once, 1 worker process; 2. the same with 2 worker processes (rate-bound: users/s
//   at the plan's rate, and two processes sharing one budget without 429s);
//   3. the naive seed loop (per currency, sequentially: create account, create address, fetch the
//   private key over the API, subscribe) with the same latency, limit, limiter and concurrency;
//   4. one worker against a sandbox with a high limit, verifies paced below capacity: the latency of a
//   user when nothing is rate-bound.
// Each worker run starts with a few untimed users (warm-up: connections, JIT); their 429s are shown
// apart. Users and codes are written straight into the database (as bench/verify.ts does); a user's
// span is its verify (users.email_verified_at) to its last account turning ready (that row's
// updated_at), both read from the database. Tatum figures come from the sandbox's counters.
//
// TATUM_MAX_RPS is 0.95 × R (--rps-fraction). The limiter spaces requests 2 % wider than that, so at
// most 0.93 × R is sent, above the 0.9 × R target; the rest absorbs ~70 ms of send-time jitter
// (at R = 50) between a request and the one R later, which the sandbox's strict one-second window
// would refuse: a busy worker's timers fire late, and at 1.0 × R such runs saw several times more 429s.
//
// Flags: --users (100) --latency-ms (50) --rate (50) --concurrency (10 jobs per worker)
// --rps-fraction (0.95) --baseline-users (20) --unbound-rate (1000) --unbound-users (20)
// --arrival-rate (2 verifies/s in run 4) --admin-url.
import { type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { z } from 'zod';
import { openDatabase, queryRows, type Database } from '../db/client.ts';
import { migrateDatabase } from '../db/migrate.ts';
import { parseConfig, WEBHOOK_PATH, type Chain } from '../jobs/config.ts';
import { Vault } from '../jobs/custody/vault.ts';
import { ensureMasterWallets, loadXpub } from '../jobs/custody/wallets.ts';
import { createLogger } from '../jobs/logger.ts';
import { resolveSecrets, type RuntimeConfig } from '../jobs/secrets.ts';
import { TatumClient } from '../jobs/tatum/client.ts';
import { createTatumRateLimiter } from '../jobs/tatum/rate-limit.ts';
import { SANDBOX_API_KEY, type SandboxCounters } from '../jobs/tatum/sandbox/server.ts';
import {
  CODE,
  cpuMs,
  createBenchDatabase,
  DEFAULT_ADMIN_URL,
  isMain,
  parseFlags,
  percentile,
  provisioningEnv,
  request,
  seedUsers,
  startSandboxProcess,
  startServer,
  startWorkerProcess,
  type SandboxProcess,
  stopProcess,
  table,
  trpcInput,
} from './lib.ts';

const count = (fallback: number) => z.coerce.number().int().positive().default(fallback);

export const ProvisionFlags = z.object({
  'admin-url': z.url({ protocol: /^postgres(ql)?$/ }).default(DEFAULT_ADMIN_URL),
  users: count(100),
  'latency-ms': z.coerce.number().int().min(0).max(10_000).default(50),
  rate: z.coerce.number().positive().max(5000).default(50),
  concurrency: count(10),
  'rps-fraction': z.coerce.number().gt(0).max(1).default(0.95),
  'baseline-users': count(20),
  'unbound-rate': z.coerce.number().positive().max(5000).default(1000),
  'unbound-users': count(20),
  'arrival-rate': z.coerce.number().positive().max(1000).default(2),
});
export type ProvisionOptions = z.infer<typeof ProvisionFlags>;

export interface RunResult {
  label: string;
  users: number;
  /** The sandbox's 429 limit for this run. */
  rate: number;
  usersPerSecond: number;
  /** Requests Tatum served per user; refused ones (429) are counted in `rateLimited`. */
  callsPerUser: number;
  /** 429s in the timed run, after the warm-up. */
  rateLimited: number;
  /** 429s while warming up (processes just started: connections, JIT); none for the naive loop. */
  rateLimitedWarmup?: number;
  /** Requests Tatum accepted per second, over the whole run and over its middle 80 %. */
  acceptedRps: number;
  steadyRps: number;
  /** CPU the worker processes used per user (undefined for the naive loop, which runs in the bench). */
  workerCpuMsPerUser?: number;
  /** Verify → ready (the naive loop: its start → its end), ms. */
  p50: number;
  p99: number;
}

export interface ProvisionResults {
  currencies: number;
  maxRps: number;
  oneWorker: RunResult;
  twoWorkers: RunResult;
  naive: RunResult;
  unbound: RunResult;
}

interface Sample {
  at: number;
  accepted: number;
  limited: number;
}

/** Requests the sandbox answered, split into refused with 429 and the rest. */
function tally(counters: SandboxCounters): Omit<Sample, 'at'> {
  let total = 0;
  for (const byStatus of Object.values(counters.requests)) for (const n of Object.values(byStatus)) total += n;
  return { accepted: total - counters.rateLimited, limited: counters.rateLimited };
}

/** Reads the sandbox's counters every 250 ms while a run lasts. */
async function sampleCounters(sandbox: SandboxProcess): Promise<{ samples: Sample[]; stop(): Promise<void> }> {
  const sample = async () => ({ at: Date.now(), ...tally(await sandbox.counters()) });
  const samples: Sample[] = [await sample()];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      await sleep(250);
      samples.push(await sample());
    }
  })();
  return {
    samples,
    async stop() {
      stopped = true;
      await loop;
      samples.push(await sample());
    },
  };
}

/** Rate figures of a run from `startMs` to `endMs` (epoch ms). */
function rates(samples: Sample[], startMs: number, endMs: number, users: number) {
  const first = samples[0]!;
  const last = samples.at(-1)!;
  const span = endMs - startMs;
  const at = (fraction: number) => samples.find((s) => s.at >= startMs + fraction * span) ?? last;
  const lastBefore = (fraction: number) => samples.findLast((s) => s.at <= startMs + fraction * span) ?? last;
  const [from, to] = [at(0.1), lastBefore(0.9)];
  return {
    callsPerUser: (last.accepted - first.accepted) / users,
    rateLimited: last.limited - first.limited,
    acceptedRps: (last.accepted - first.accepted) / (span / 1000),
    steadyRps: to.at > from.at ? (to.accepted - from.accepted) / ((to.at - from.at) / 1000) : Number.NaN,
  };
}

function latencyFigures(ms: number[]) {
  const sorted = [...ms].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

interface Bench {
  options: ProvisionOptions;
  config: RuntimeConfig;
  db: Database;
  env: Record<string, string>;
  serverUrl: string;
  currencies: { code: string; chain: Chain }[];
}

/** Verifies `emails` over HTTP: all at once (16 clients), or one every 1/arrivalRate s. */
async function sendVerifies(serverUrl: string, emails: string[], arrivalRate?: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const target = new URL(`${serverUrl}/trpc/auth.verify`);
  const verifyOne = async (email: string) => {
    const { status, body } = await request(agent, target, { body: trpcInput({ email, code: CODE }) });
    if (status !== 200) throw new Error(`auth.verify answered ${status}: ${body}`);
  };
  try {
    if (arrivalRate === undefined) {
      let next = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < emails.length) await verifyOne(emails[next++]!);
      }));
      return;
    }
    const started = performance.now();
    const sent: Promise<void>[] = [];
    for (const [i, email] of emails.entries()) {
      await sleep(Math.max(0, started + (i * 1000) / arrivalRate - performance.now()));
      sent.push(verifyOne(email));
    }
    await Promise.all(sent);
  } finally {
    agent.destroy();
  }
}

/** Polls until every user of `emailPrefix` has all currencies ready; a failed account ends the run. */
async function waitAllReady(bench: Bench, emailPrefix: string, users: number, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const [row] = await queryRows<{ ready: number; failed: number }>(bench.db, sql`
      select count(*) filter (where va.status = 'ready')::int as ready, count(*) filter (where va.status = 'failed')::int as failed
      from users u join virtual_accounts va on va.user_id = u.id
      where u.email like ${`${emailPrefix}%`}`);
    if (row!.failed > 0) throw new Error(`${row!.failed} accounts of ${emailPrefix}* failed`);
    if (row!.ready === users * bench.currencies.length) return;
    if (Date.now() > until) throw new Error(`${emailPrefix}*: ${row!.ready} of ${users * bench.currencies.length} accounts ready after ${deadlineMs} ms`);
    await sleep(250);
  }
}

/**
 * Per user of `emailPrefix`, epoch ms: the verify (Postgres' now() in its transaction, just before the
 * commit) and the last account turning ready (the worker's write). One machine, so one clock.
 */
async function userSpans(db: Database, emailPrefix: string): Promise<{ verifiedAt: number; readyAt: number }[]> {
  return queryRows<{ verifiedAt: number; readyAt: number }>(db, sql`
    select (extract(epoch from u.email_verified_at) * 1000)::float8 as "verifiedAt",
           (extract(epoch from max(va.updated_at)) * 1000)::float8 as "readyAt"
    from users u join virtual_accounts va on va.user_id = u.id
    where u.email like ${`${emailPrefix}%`}
    group by u.id`);
}

/** Users provisioned by each worker process before a run is timed. */
const WARMUP_USERS_PER_WORKER = 5;

const emailsOf = (prefix: string, users: number) => Array.from({ length: users }, (_, i) => `${prefix}${i}@bench.invalid`);

/**
 * One run through the real processes: a fresh sandbox, `workers` worker processes, a few users to
 * warm them up, then the timed verifies until every user is ready.
 */
async function provisionRun(
  bench: Bench,
  run: { label: string; emailPrefix: string; users: number; workers: number; rate: number; arrivalRate?: number },
): Promise<RunResult> {
  const { options } = bench;
  const sandbox = await startSandboxProcess({ latencyMs: options['latency-ms'], rateLimitRps: run.rate });
  const workers: ChildProcess[] = [];
  try {
    const workerEnv = {
      ...bench.env,
      TATUM_BASE_URL: sandbox.url,
      TATUM_MAX_RPS: String(run.rate * options['rps-fraction']),
      TATUM_WEBHOOK_URL: `${bench.serverUrl}${WEBHOOK_PATH}`,
      QUEUE_CONCURRENCY: String(options.concurrency),
      DATABASE_POOL_MAX: '5',
    };
    workers.push(...(await Promise.all(Array.from({ length: run.workers }, () => startWorkerProcess(workerEnv)))));
    const warmup = { prefix: `warmup-${run.emailPrefix}`, users: WARMUP_USERS_PER_WORKER * run.workers };
    const emails = emailsOf(run.emailPrefix, run.users);
    await seedUsers(bench.env.DATABASE_URL!, bench.config, [...emailsOf(warmup.prefix, warmup.users), ...emails]);
    const beforeWarmup = tally(await sandbox.counters());
    await sendVerifies(bench.serverUrl, emailsOf(warmup.prefix, warmup.users));
    await waitAllReady(bench, warmup.prefix, warmup.users, 120_000);

    const workerCpu = () => workers.reduce((sum, w) => sum + cpuMs(w.pid!), 0);
    const cpuBefore = workerCpu();
    const sampler = await sampleCounters(sandbox);
    await sendVerifies(bench.serverUrl, emails, run.arrivalRate);
    // Generous: ten times the rate-bound duration, at least two minutes.
    const expectedMs = (run.users * (bench.currencies.length + 2) * 1000) / (run.rate * options['rps-fraction']);
    await waitAllReady(bench, run.emailPrefix, run.users, Math.max(120_000, 10 * expectedMs));
    await sampler.stop();
    const workerCpuMsPerUser = (workerCpu() - cpuBefore) / run.users;

    const spans = await userSpans(bench.db, run.emailPrefix);
    const start = Math.min(...spans.map((s) => s.verifiedAt));
    const end = Math.max(...spans.map((s) => s.readyAt));
    return {
      label: run.label,
      users: run.users,
      rate: run.rate,
      usersPerSecond: run.users / ((end - start) / 1000),
      ...rates(sampler.samples, start, end, run.users),
      rateLimitedWarmup: sampler.samples[0]!.limited - beforeWarmup.limited,
      workerCpuMsPerUser,
      ...latencyFigures(spans.map((s) => s.readyAt - s.verifiedAt)),
    };
  } finally {
    await Promise.all([...workers, sandbox.child].map((child) => stopProcess(child)));
  }
}

/**
 * The seed's loop, per user: for each currency in turn, create the account, create an address (the
 * next free index), fetch the private key over the API, subscribe: 4 sequential calls per currency.
 * The sandbox has no POST /v3/{chain}/wallet/priv, so a GET of the account's addresses stands in for
 * it: one more round trip with the same latency, counted against the same limit. It gets the same
 * concurrency as the two workers together and the same shared rate limiter, so only the loop's shape
 * differs; it writes nothing to the database, which only flatters it.
 */
async function naiveRun(bench: Bench, users: number, concurrency: number): Promise<RunResult> {
  const { options } = bench;
  const sandbox = await startSandboxProcess({ latencyMs: options['latency-ms'], rateLimitRps: options.rate });
  try {
    const tatum = new TatumClient({
      baseUrl: sandbox.url,
      apiKey: SANDBOX_API_KEY,
      timeoutMs: 10_000,
      rateLimiter: createTatumRateLimiter(bench.db, { maxRps: options.rate * options['rps-fraction'], name: 'tatum-naive' }),
    });
    const xpubs = new Map<Chain, string>();
    for (const { chain } of bench.currencies) xpubs.set(chain, await loadXpub(bench.db, chain));
    const url = `${bench.serverUrl}${WEBHOOK_PATH}`;

    const sampler = await sampleCounters(sandbox);
    const durations: number[] = [];
    const start = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < users) {
          next++;
          const userId = randomUUID();
          const started = Date.now();
          for (const { code, chain } of bench.currencies) {
            const account = await tatum.createAccount({ currency: code, xpub: xpubs.get(chain)!, customer: { externalId: userId } });
            await tatum.createDepositAddress(account.id);
            await tatum.listDepositAddresses(account.id); // stands in for POST /v3/{chain}/wallet/priv
            await tatum.createSubscription({ accountId: account.id, url });
          }
          durations.push(Date.now() - started);
        }
      }),
    );
    const end = Date.now();
    await sampler.stop();
    return {
      label: `naive seed loop, ${concurrency} users at a time`,
      users,
      rate: options.rate,
      usersPerSecond: users / ((end - start) / 1000),
      ...rates(sampler.samples, start, end, users),
      ...latencyFigures(durations),
    };
  } finally {
    await stopProcess(sandbox.child);
  }
}

export async function runProvisionBench(options: ProvisionOptions, progress: (line: string) => void = () => {}): Promise<ProvisionResults> {
  const database = await createBenchDatabase(options['admin-url'], 'bench_provision');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'bench-provision-'));
  const env = provisioningEnv(database.url, dataDir);
  let server: ChildProcess | undefined;
  const handle = await openDatabase({ url: database.url, dataDir, poolMax: 4 });
  try {
    const config = resolveSecrets(parseConfig(env), createLogger({ level: 'silent' }));
    await migrateDatabase(handle);
    // Made here once, so worker processes starting together do not race to create them.
    await ensureMasterWallets(handle.db, Vault.fromConfig(config));
    const currencies = await queryRows<{ code: string; chain: Chain }>(handle.db, sql`select code, chain from wallet_currencies where enabled order by code`);
    const started = await startServer(env);
    server = started.child;
    const bench: Bench = { options, config, db: handle.db, env, serverUrl: started.url, currencies };

    const burst = { users: options.users, rate: options.rate };
    progress('run 1/4: 1 worker process');
    const oneWorker = await provisionRun(bench, { ...burst, label: '1 worker, all verifies at once', emailPrefix: 'one-worker-', workers: 1 });
    progress('run 2/4: 2 worker processes');
    const twoWorkers = await provisionRun(bench, { ...burst, label: '2 workers, all verifies at once', emailPrefix: 'two-workers-', workers: 2 });
    progress('run 3/4: naive seed loop');
    const naive = await naiveRun(bench, options['baseline-users'], 2 * options.concurrency);
    progress('run 4/4: not rate-bound');
    const unbound = await provisionRun(bench, {
      label: `1 worker, limit ${options['unbound-rate']}/s, ${options['arrival-rate']} verifies/s`,
      emailPrefix: 'unbound-',
      users: options['unbound-users'],
      workers: 1,
      rate: options['unbound-rate'],
      arrivalRate: options['arrival-rate'],
    });
    return { currencies: currencies.length, maxRps: options.rate * options['rps-fraction'], oneWorker, twoWorkers, naive, unbound };
  } finally {
    if (server) await stopProcess(server);
    await handle.close();
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const fixed = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const verdict = (ok: boolean) => (ok ? 'met' : 'NOT MET');

/** The targets of issue 5, each with the figure it is judged on. */
export interface Target {
  target: string;
  figure: string;
  met: boolean;
}

export function provisionTargets(options: ProvisionOptions, r: ProvisionResults): Record<'calls' | 'rateTwoWorkers' | 'rateOneWorker' | 'no429' | 'latency', Target> {
  const limit = r.currencies + 2;
  const calls = Math.max(r.oneWorker.callsPerUser, r.twoWorkers.callsPerUser, r.unbound.callsPerUser);
  const rateTarget = 0.9 * options.rate;
  const warm429 = r.oneWorker.rateLimited + r.twoWorkers.rateLimited;
  const latencyLimit = 4 * options['latency-ms'] + 100;
  return {
    calls: { target: `Tatum calls per user <= C + 2 = ${limit}`, figure: `${fixed(calls, 2)} (highest of the worker runs)`, met: calls <= limit },
    rateTwoWorkers: { target: `Tatum request rate >= 0.9 x R = ${fixed(rateTarget)}/s, 2 workers`, figure: `${fixed(r.twoWorkers.steadyRps)}/s (steady)`, met: r.twoWorkers.steadyRps >= rateTarget },
    rateOneWorker: { target: `Tatum request rate >= 0.9 x R = ${fixed(rateTarget)}/s, 1 worker`, figure: `${fixed(r.oneWorker.steadyRps)}/s (steady)`, met: r.oneWorker.steadyRps >= rateTarget },
    no429: { target: 'zero 429s once warm', figure: `${warm429} (1 and 2 workers, after warm-up)`, met: warm429 === 0 },
    latency: { target: `p50 verify -> ready <= 4 x L + 100 = ${latencyLimit} ms, not rate-bound`, figure: `${fixed(r.unbound.p50, 0)} ms`, met: r.unbound.p50 <= latencyLimit },
  };
}

export function provisionHeadline(options: ProvisionOptions, r: Pick<ProvisionResults, 'currencies' | 'maxRps'>): string {
  return (
    `bench:provision: ${options.users} users, sandbox latency ${options['latency-ms']} ms, 429 limit ${options.rate} requests/s ` +
    `(TATUM_MAX_RPS ${fixed(r.maxRps, 2)}), C = ${r.currencies} currencies, QUEUE_CONCURRENCY ${options.concurrency} per worker`
  );
}

export function provisionReport(options: ProvisionOptions, r: ProvisionResults): string {
  const line = (run: RunResult) => [
    run.label,
    fixed(run.usersPerSecond, 2),
    fixed(run.callsPerUser, 2),
    `${run.rateLimited} (${run.rateLimitedWarmup ?? '-'})`,
    `${fixed(run.steadyRps)} / ${fixed(run.acceptedRps)} (R ${run.rate})`,
    `${fixed(run.p50, 0)} / ${fixed(run.p99, 0)}`,
    run.workerCpuMsPerUser === undefined ? 'n/a' : fixed(run.workerCpuMsPerUser, 0),
  ];
  return [
    table([
      ['run', 'users/s', 'calls/user', '429s (in warm-up)', 'Tatum req/s steady / whole', 'p50 / p99 ms', 'worker CPU ms/user'],
      line(r.oneWorker),
      line(r.twoWorkers),
      line(r.naive),
      line(r.unbound),
    ]),
    '',
    `users/s, 2 workers vs the naive loop: ${fixed(r.twoWorkers.usersPerSecond / r.naive.usersPerSecond, 2)}x; ` +
      `calls per user: ${fixed(r.twoWorkers.callsPerUser, 2)} vs ${fixed(r.naive.callsPerUser, 2)}`,
    '(calls/user: requests Tatum served; 429s: requests it refused, then retried)',
    '(p50 / p99: verify -> all ready; for the naive loop, a user\'s first call -> last answer)',
    '',
    table([['target', 'figure', ''], ...Object.values(provisionTargets(options, r)).map((t) => [t.target, t.figure, verdict(t.met)])]),
  ].join('\n');
}

if (isMain(import.meta)) {
  const options = parseFlags(ProvisionFlags);
  const results = await runProvisionBench(options, (line) => console.error(line));
  console.log(provisionHeadline(options, results));
  console.log(`\n${provisionReport(options, results)}`);
}
