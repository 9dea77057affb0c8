// What the benchmarks share: flags, a fresh database per run, users seeded with a known code, the
// server and worker as child processes, a cheap HTTP client, percentiles, tables and RESULTS.md.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { z } from 'zod';
import type { RuntimeConfig } from '../jobs/secrets.ts';
import { SANDBOX_API_KEY, type SandboxCounters } from '../jobs/tatum/sandbox/server.ts';
import { hashCode } from '../server/auth/codes.ts';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const DEFAULT_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
/** The code every seeded user has pending. */
export const CODE = '424242';

/** Flags are plain `--name value` strings, coerced and checked by the schema; a bad one exits 2 with zod's message. */
export function parseFlags<T extends z.ZodObject>(schema: T, args: string[] = process.argv.slice(2)): z.infer<T> {
  const options = Object.fromEntries(Object.keys(schema.shape).map((name) => [name, { type: 'string' as const }]));
  let values: unknown;
  try {
    values = parseArgs({ args, options }).values;
  } catch (err) {
    // An unknown flag or a flag without its value.
    console.error(`Invalid flags: ${(err as Error).message}`);
    process.exit(2);
  }
  const parsed = schema.safeParse(values);
  if (!parsed.success) {
    console.error(`Invalid flags:\n${z.prettifyError(parsed.error)}`);
    process.exit(2);
  }
  return parsed.data;
}

/** True when `meta` is the module node was started with (so a benchmark file is also a library). */
export const isMain = (meta: ImportMeta) => path.resolve(process.argv[1] ?? '') === meta.filename;

export const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface BenchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** An empty database on the admin URL's server, named `<prefix>_<random>`; the caller migrates it. */
/**
 * The environment every process of a provisioning run shares: the same secrets, so none generates
 * its own, and no job-start limit (its default 10 jobs/s would cap users/s below the Tatum rate).
 */
export function provisioningEnv(databaseUrl: string, dataDir: string): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    DATA_DIR: dataDir,
    ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    TATUM_WEBHOOK_HMAC_SECRET: randomBytes(32).toString('hex'),
    ADMIN_TOKEN: randomBytes(32).toString('hex'),
    DATABASE_POOL_MAX: '8',
    QUEUE_MAX_JOBS: '1000000',
  };
}

export async function createBenchDatabase(adminUrl: string, prefix: string): Promise<BenchDatabase> {
  const name = `${prefix}_${randomUUID().slice(0, 8)}`;
  await withClient(adminUrl, (c) => c.query(`create database ${name}`));
  return {
    name,
    url: Object.assign(new URL(adminUrl), { pathname: `/${name}` }).toString(),
    drop: () => withClient(adminUrl, (c) => c.query(`drop database if exists ${name} with (force)`)).then(() => undefined),
  };
}

/** Unverified users, each with the pending code CODE, stored as the server stores it. */
export async function seedUsers(databaseUrl: string, config: RuntimeConfig, emails: string[]): Promise<void> {
  await withClient(databaseUrl, async (client) => {
    for (let i = 0; i < emails.length; i += 1000) {
      const batch = emails.slice(i, i + 1000).map((email) => ({ id: randomUUID(), email }));
      const ids = batch.map((u) => u.id);
      await client.query(`insert into users (id, email) select * from unnest($1::uuid[], $2::text[])`, [ids, batch.map((u) => u.email)]);
      await client.query(
        `insert into verification_codes (user_id, code_hash, expires_at)
         select id, hash, now() + interval '1 day' from unnest($1::uuid[], $2::text[]) as c(id, hash)`,
        [ids, batch.map((u) => hashCode(config, u.id, CODE))],
      );
    }
    await client.query('analyze');
  });
}

/**
 * A project process (`server/main.ts`, `jobs/run.ts tatum`, ...) configured only by `env`; resolves
 * once its output matches `ready`.
 */
export function startProcess(args: string[], env: Record<string, string>, ready: RegExp): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
  const stdout = child.stdout!;
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += String(chunk);
      const match = output.match(ready);
      if (!match) return;
      // From now on its output is drained and dropped; the pipe stays open, so its writes never fail.
      stdout.off('data', onData);
      child.off('exit', onExit);
      stdout.resume();
      resolve({ child, match });
    };
    const onExit = () => reject(new Error(`${args.join(' ')} exited before it was ready:\n${output}`));
    stdout.on('data', onData);
    child.once('exit', onExit);
  });
}

/** The HTTP server (`npm start`) on a free port; `env` needs DATABASE_URL and the secrets. */
export async function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const { child, match } = await startProcess(['server/main.ts'], { ...env, PORT: '0', LOG_LEVEL: 'info' }, /"url":"(http:\/\/[^"]+)"/);
  return { child, url: match[1]! };
}

/** One `npm run queue:work:tatum` process, once it takes jobs. */
export async function startWorkerProcess(env: Record<string, string>): Promise<ChildProcess> {
  const { child } = await startProcess(['jobs/run.ts', 'tatum'], { ...env, LOG_LEVEL: 'info' }, /"msg":"worker started"/);
  return child;
}

export interface SandboxProcess {
  url: string;
  child: ChildProcess;
  /** GET /sandbox/counters. */
  counters(): Promise<SandboxCounters>;
}

/**
 * `npm run tatum:sandbox` as a process of its own, as Tatum is: its timers (the latency, the
 * one-second window of its 429 limit) do not share an event loop with the load generator.
 */
export async function startSandboxProcess(options: { latencyMs: number; rateLimitRps?: number }): Promise<SandboxProcess> {
  const flags = ['--port', '0', '--latency-ms', String(options.latencyMs)];
  if (options.rateLimitRps !== undefined) flags.push('--rate-limit-rps', String(options.rateLimitRps));
  const { child, match } = await startProcess(['jobs/tatum/sandbox/main.ts', ...flags], {}, /listening on (http:\/\/\S+)/);
  const url = match[1]!;
  return {
    url,
    child,
    async counters() {
      const res = await fetch(`${url}/sandbox/counters`, { headers: { 'x-api-key': SANDBOX_API_KEY } });
      if (!res.ok) throw new Error(`GET /sandbox/counters answered ${res.status}`);
      return (await res.json()) as SandboxCounters;
    },
  };
}

/** SIGTERM (the processes stop gracefully), SIGKILL after `graceMs`. */
export async function stopProcess(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export interface HttpAnswer {
  status: number;
  body: string;
}

/** One request on a kept-alive connection; node:http costs the client far less CPU than fetch. */
export function request(
  agent: http.Agent,
  url: URL,
  options: { method?: 'GET' | 'POST'; body?: string; headers?: Record<string, string> } = {},
): Promise<HttpAnswer> {
  const { method = options.body === undefined ? 'GET' : 'POST', body, headers = {} } = options;
  const sent = body === undefined ? headers : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers };
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers: sent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A tRPC mutation's body (superjson's envelope). */
export const trpcInput = (input: unknown) => JSON.stringify({ json: input });

/** Left-aligned columns, as wide as their widest cell. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]! + 2)).join('').trimEnd()).join('\n');
}

/** A Markdown table; the first row is the header. */
export function markdownTable(rows: string[][]): string {
  const line = (r: string[]) => `| ${r.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`;
  return [line(rows[0]!), line(rows[0]!.map(() => '---')), ...rows.slice(1).map(line)].join('\n');
}

export const RESULTS_FILE = path.join(ROOT, 'bench', 'RESULTS.md');

/**
 * Replaces one section of a results file (between `<!-- name -->` and `<!-- /name -->`), or appends
 * it: `npm run bench` and `npm run soak` each own a section of bench/RESULTS.md.
 */
export function writeResultsSection(file: string, name: string, markdown: string): void {
  const start = `<!-- ${name} -->`;
  const end = `<!-- /${name} -->`;
  const block = `${start}\n${markdown.trim()}\n${end}`;
  const current = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const from = current.indexOf(start);
  const to = current.indexOf(end);
  const next = from >= 0 && to > from ? `${current.slice(0, from)}${block}${current.slice(to + end.length)}` : `${current.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, `${next.trim()}\n`);
}

// USER_HZ: 100 on every Linux architecture Node runs on.
const CLOCK_TICKS = 100;

/** CPU time (user + system) a process has used so far, ms, from /proc (Linux). */
export function cpuMs(pid: number): number {
  // Fields after the command name (which may hold spaces, hence the last ')'); utime and stime are the 12th and 13th.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').at(-1)!.trim().split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** Resident set size of a process, KiB, from /proc (Linux). */
export function rssKiB(pid: number): number {
  const match = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]);
}
