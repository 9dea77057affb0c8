// The deployment the fault scenarios break: a fresh database, the Tatum sandbox (in the test process,
// so its ledger, counters and knobs are at hand), and the server and two `tatum` workers as child
// processes started exactly as `npm start` and `npm run queue:work:tatum` start them, configured only
// by their environment. Each child's log goes to <tmpdir>/tatum-faults/<scenario>/, rewritten every
// run, so a failed run can be read afterwards.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { CODE, seedUsers } from '../../bench/lib.ts';
import { parseConfig, WEBHOOK_PATH } from '../../jobs/config.ts';
import { createLogger } from '../../jobs/logger.ts';
import { resolveSecrets, type RuntimeConfig } from '../../jobs/secrets.ts';
import type { SandboxOptions } from '../../jobs/tatum/sandbox/server.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTestSandbox, type TestSandbox } from '../helpers/sandbox.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

export interface ProjectProcess {
  name: string;
  child: ChildProcess;
  /** The first log line matching the process's ready pattern; rejects if it exits first. */
  ready: Promise<RegExpMatchArray>;
  exited: Promise<void>;
  /** Sends `signal` and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** `node --import tsx <args>` with only `env` (and PATH), its stdout and stderr appended to `<logDir>/<name>.log`. */
export function launch(name: string, args: string[], env: Record<string, string>, readyPattern: RegExp, logDir: string): ProjectProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logFile = path.join(logDir, `${name}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  child.stderr!.pipe(log, { end: false });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<RegExpMatchArray>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      log.write(`${line}\n`);
      const match = line.match(readyPattern);
      if (match) resolve(match);
    });
    void exited.then(() => reject(new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before it was ready; see ${logFile}`)));
  });
  // A worker killed while it starts is part of the kill scenario, not an unhandled rejection.
  ready.catch(() => {});
  // 'close' comes after the last output, which 'exit' may precede.
  child.once('close', () => log.end());
  return {
    name,
    child,
    ready,
    exited,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

export interface StackOptions {
  /** Names the log directory. */
  scenario: string;
  /** Added to (or overriding) every process's environment. */
  env?: Record<string, string>;
  sandbox?: SandboxOptions;
}

export interface Stack {
  database: TestDatabase;
  sandbox: TestSandbox;
  /** The secrets and settings every process shares (server and workers). */
  config: RuntimeConfig;
  server: ProjectProcess & { url: string };
  /** The current worker processes, in their slots. */
  workers: ProjectProcess[];
  logDir: string;
  /** Starts a worker into `slot` (replacing whatever was there) without waiting for it to be ready. */
  startWorker(slot: number): ProjectProcess;
  /** `Authorization` for admin procedures. */
  adminHeaders: Record<string, string>;
  stop(): Promise<void>;
}

export const WORKERS = 2;

export async function startStack(options: StackOptions): Promise<Stack> {
  const logDir = path.join(tmpdir(), 'tatum-faults', options.scenario);
  rmSync(logDir, { recursive: true, force: true });
  mkdirSync(logDir, { recursive: true });
  const dataDir = mkdtempSync(path.join(tmpdir(), 'faults-data-'));
  const database = await createTestDatabase();
  const sandbox = await startTestSandbox(options.sandbox);
  const env: Record<string, string> = {
    DATABASE_URL: database.url,
    DATA_DIR: dataDir,
    ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    TATUM_WEBHOOK_HMAC_SECRET: randomBytes(32).toString('hex'),
    ADMIN_TOKEN: randomBytes(32).toString('hex'),
    TATUM_BASE_URL: sandbox.url,
    LOG_LEVEL: 'info',
    // Small pools: several processes share one Postgres (max_connections 100) with whatever else runs.
    DATABASE_POOL_MAX: '5',
    QUEUE_CONCURRENCY: '5',
    // Neither the job-start limiter nor the Tatum pace is what a fault scenario measures.
    QUEUE_MAX_JOBS: '1000',
    TATUM_MAX_RPS: '500',
    // A failed attempt comes back after 1 s, 2 s, 4 s...; the sweep runs every minute.
    QUEUE_ATTEMPTS: '10',
    QUEUE_BACKOFF_MS: '1000',
    RECONCILE_CRON: '* * * * *',
    ...options.env,
  };
  const config = resolveSecrets(parseConfig(env), createLogger({ level: 'silent' }));

  const serverProcess = launch('server', ['server/main.ts'], { ...env, PORT: '0' }, /"url":"(http:\/\/[^"]+)"/, logDir);
  const url = (await serverProcess.ready)[1]!;
  const workerEnv = { ...env, TATUM_WEBHOOK_URL: `${url}${WEBHOOK_PATH}` };
  const workers: ProjectProcess[] = [];
  let started = 0;
  const startWorker = (slot: number) => {
    started += 1;
    workers[slot] = launch(`worker-${slot}-${started}`, ['jobs/run.ts', 'tatum'], workerEnv, /"msg":"worker started"/, logDir);
    return workers[slot]!;
  };
  for (let slot = 0; slot < WORKERS; slot++) startWorker(slot);
  await Promise.all(workers.map((w) => w.ready));

  return {
    database,
    sandbox,
    config,
    server: { ...serverProcess, url },
    workers,
    logDir,
    startWorker,
    adminHeaders: { authorization: `Bearer ${config.ADMIN_TOKEN}` },
    async stop() {
      await Promise.all([...workers, serverProcess].map((p) => stopGracefully(p)));
      await sandbox.close();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** SIGTERM, and SIGKILL if the process has not exited within `graceMs`. */
async function stopGracefully(p: ProjectProcess, graceMs = 15_000): Promise<void> {
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await p.kill('SIGTERM');
  clearTimeout(timer);
}

/** `count` unverified users, each with the pending code CODE; returns their addresses. */
export async function seedUnverifiedUsers(stack: Stack, prefix: string, count: number): Promise<string[]> {
  const emails = Array.from({ length: count }, (_, i) => `${prefix}-${i}@example.com`);
  await seedUsers(stack.database.url, stack.config, emails);
  return emails;
}

export interface Answer {
  status: number;
  body: string;
  ms: number;
}

/** One HTTP request; a network failure or no answer within `timeoutMs` is status 0. */
export async function call(url: string, init: RequestInit = {}, timeoutMs = 15_000): Promise<Answer> {
  const started = performance.now();
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    const body = await res.text();
    return { status: res.status, body, ms: performance.now() - started };
  } catch (err) {
    return { status: 0, body: String(err), ms: performance.now() - started };
  }
}

/** auth.verify over HTTP, as a browser would send it. */
export function verifyRequest(stack: Stack, email: string, timeoutMs?: number): Promise<Answer> {
  return call(
    `${stack.server.url}/trpc/auth.verify`,
    { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ json: { email, code: CODE } }) },
    timeoutMs,
  );
}

/** Runs `work` over `items` with at most `concurrency` in flight; results in item order. */
export async function inParallel<T, R>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return results;
}

/** Polls `read` every `intervalMs` until `done` holds; throws naming `what` after `timeoutMs`. */
export async function waitUntil<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number, intervalMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs / 1000} s (last: ${JSON.stringify(value)})`);
    await sleep(intervalMs);
  }
}

export async function count(stack: Stack, sqlText: string, values?: unknown[]): Promise<number> {
  const { rows } = await stack.database.query<{ n: number }>(sqlText, values);
  return rows[0]!.n;
}

/** The database's clock, to compare with timestamps it wrote. */
export async function databaseNow(stack: Stack): Promise<Date> {
  const { rows } = await stack.database.query<{ now: Date }>(`select now()`);
  return rows[0]!.now;
}

export async function enabledCurrencies(stack: Stack): Promise<number> {
  return count(stack, `select count(*)::int as n from wallet_currencies where enabled`);
}

/** Accounts in `ready`, over every user. */
export const readyAccounts = (stack: Stack) => count(stack, `select count(*)::int as n from virtual_accounts where status = 'ready'`);

/**
 * The end state every provisioning scenario must reach: each of `users` verified users has every
 * enabled currency ready, and Tatum holds exactly what our database knows: one account per
 * (user, currency) under its deterministic account number and the user's customer, one address (the
 * one we derived a key for) and one subscription (the one we stored) on each, nothing else; and no
 * derivation index was handed out twice.
 */
export async function expectProvisionedExactlyOnce(stack: Stack, users: number): Promise<void> {
  const currencies = await enabledCurrencies(stack);
  expect(await count(stack, `select count(*)::int as n from users where email_verified_at is not null`)).toBe(users);
  expect(await count(stack, `select count(*)::int as n from virtual_accounts where status <> 'ready'`)).toBe(0);
  const { rows } = await stack.database.query<{ tatum_account_id: string; account_number: string; user_id: string; address: string; tatum_subscription_id: string }>(
    `select va.tatum_account_id, va.account_number, va.user_id, da.address, ws.tatum_subscription_id
     from virtual_accounts va
     join deposit_addresses da on da.id = va.deposit_address_id
     join webhook_subscriptions ws on ws.virtual_account_id = va.id`,
  );
  expect(rows).toHaveLength(users * currencies);

  const state = stack.sandbox.state();
  const customers = new Map(state.customers.map((c) => [c.id, c.externalId]));
  expect(state.accounts).toHaveLength(users * currencies);
  expect(new Set(state.accounts.map((a) => a.accountNumber)).size).toBe(users * currencies);
  const ours = new Map(rows.map((r) => [r.tatum_account_id, r]));
  for (const account of state.accounts) {
    const row = ours.get(account.id);
    expect(row, `Tatum account ${account.id} (${account.accountNumber}) is unknown to our database`).toBeDefined();
    expect(account.accountNumber).toBe(row!.account_number);
    expect(customers.get(account.customerId!)).toBe(row!.user_id);
    expect(account.addresses.map((a) => a.address)).toEqual([row!.address]);
    expect(account.subscriptions.map((s) => s.id)).toEqual([row!.tatum_subscription_id]);
  }
  expect(state.subscriptions).toHaveLength(users * currencies);
  expect(state.customers).toHaveLength(users);

  const reused = await count(
    stack,
    `select count(*)::int as n from (select chain, derivation_index from deposit_addresses group by 1, 2 having count(*) > 1) d`,
  );
  expect(reused).toBe(0);
}
