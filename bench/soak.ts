// `npm run soak -- --minutes 10`: a steady mixed load on the server and one worker process, both
// child processes on a fresh database, with the Tatum sandbox as a third process:
//   - auth.verify of seeded users (each schedules provisioning: 11 Tatum calls in the worker);
//   - wallet.accounts with the sessions those verifies returned;
//   - queue.stats with the admin token;
//   - signed deposit webhooks (POST /webhooks/tatum) for provisioned accounts, 10 % of them repeats.
// Prints the resident memory (VmRSS) of server and worker each period (a minute; shorter when the
// whole run is under three minutes, e.g. --minutes 0.5), then checks that it is flat: the last
// period's mean within 10 % of the second's (the first is warm-up). PASS also needs every request
// answered as expected and, once the load stops, every verified user provisioned and every unique
// deposit stored. --results FILE writes the figures into that file's section for this duration
// (`soak-3min`, `soak-10min`, ...), so soaks of different lengths are kept side by side.
//
// Flags: --minutes (10) --verifies-per-second (2) --reads-per-second (10) --stats-per-second (1)
// --webhooks-per-second (5) --latency-ms (20, the sandbox's) --results FILE --admin-url.
import { type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { parseConfig, WEBHOOK_PATH } from '../jobs/config.ts';
import { createLogger } from '../jobs/logger.ts';
import { resolveSecrets } from '../jobs/secrets.ts';
import { INCOMING_TRANSACTION } from '../jobs/tatum/schemas.ts';
import {
  CODE,
  createBenchDatabase,
  DEFAULT_ADMIN_URL,
  markdownTable,
  parseFlags,
  provisioningEnv,
  request,
  rssKiB,
  seedUsers,
  startSandboxProcess,
  startServer,
  startWorkerProcess,
  stopProcess,
  table,
  trpcInput,
  withClient,
  writeResultsSection,
  type HttpAnswer,
} from './lib.ts';

const perSecond = (fallback: number) => z.coerce.number().min(0).max(1000).default(fallback);

const Flags = z.object({
  'admin-url': z.url({ protocol: /^postgres(ql)?$/ }).default(DEFAULT_ADMIN_URL),
  minutes: z.coerce.number().positive().max(24 * 60).default(10),
  'verifies-per-second': perSecond(2),
  'reads-per-second': perSecond(10),
  'stats-per-second': perSecond(1),
  'webhooks-per-second': perSecond(5),
  'latency-ms': z.coerce.number().int().min(0).max(10_000).default(20),
  results: z.string().min(1).optional(),
});
type Options = z.infer<typeof Flags>;

const OPERATIONS = ['verify', 'read', 'stats', 'webhook'] as const;
type Operation = (typeof OPERATIONS)[number];

/** RSS must stay within this fraction of the second period's. */
const FLAT = 0.1;
/** Requests of one kind in flight before the next tick is skipped (and counted as an error). */
const MAX_IN_FLIGHT = 200;
const DUPLICATE_SHARE = 0.1;

interface Period {
  index: number;
  serverRss: number[];
  workerRss: number[];
  done: Record<Operation, number>;
  errors: Record<Operation, number>;
}

const newPeriod = (index: number): Period => ({
  index,
  serverRss: [],
  workerRss: [],
  done: { verify: 0, read: 0, stats: 0, webhook: 0 },
  errors: { verify: 0, read: 0, stats: 0, webhook: 0 },
});

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
const mib = (kib: number) => (kib / 1024).toFixed(1);

interface DepositTarget {
  accountId: string;
  currency: string;
  address: string;
}

async function soak(options: Options): Promise<{ report: string; markdown: string; pass: boolean }> {
  const totalMs = options.minutes * 60_000;
  const periodMs = Math.min(60_000, totalMs / 3);
  const database = await createBenchDatabase(options['admin-url'], 'soak');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'soak-'));
  const env = provisioningEnv(database.url, dataDir);
  const children: ChildProcess[] = [];
  try {
    const config = resolveSecrets(parseConfig(env), createLogger({ level: 'silent' }));
    const sandbox = await startSandboxProcess({ latencyMs: options['latency-ms'] });
    children.push(sandbox.child);
    const server = await startServer(env); // migrates the database
    children.push(server.child);
    const worker = await startWorkerProcess({
      ...env,
      TATUM_BASE_URL: sandbox.url,
      TATUM_MAX_RPS: '200',
      TATUM_WEBHOOK_URL: `${server.url}${WEBHOOK_PATH}`,
      QUEUE_CONCURRENCY: '10',
      DATABASE_POOL_MAX: '5',
    });
    children.push(worker);

    const emails = Array.from({ length: Math.ceil((totalMs / 1000) * options['verifies-per-second']) + 10 }, (_, i) => `soak-${i}@bench.invalid`);
    await seedUsers(database.url, config, emails);

    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    const url = (p: string) => new URL(`${server.url}${p}`);
    const sessions: string[] = [];
    const references: string[] = [];
    let targets: DepositTarget[] = [];
    let nextEmail = 0;
    const uniqueStored = new Set<string>();

    // Each answers whether its request got the expected answer, or undefined when there was nothing to do yet.
    const operations: Record<Operation, () => Promise<boolean | undefined>> = {
      async verify() {
        const answer = await request(agent, url('/trpc/auth.verify'), { body: trpcInput({ email: emails[nextEmail++]!, code: CODE }) });
        if (answer.status !== 200) return false;
        sessions.push(trpcData<{ sessionToken: string }>(answer).sessionToken);
        return true;
      },
      async read() {
        const token = sessions[Math.floor(Math.random() * sessions.length)];
        if (token === undefined) return undefined; // nobody verified yet
        const answer = await request(agent, url('/trpc/wallet.accounts'), { headers: { authorization: `Bearer ${token}` } });
        return answer.status === 200;
      },
      async stats() {
        const answer = await request(agent, url('/trpc/queue.stats'), { headers: { authorization: `Bearer ${config.ADMIN_TOKEN}` } });
        return answer.status === 200;
      },
      async webhook() {
        const target = targets[Math.floor(Math.random() * targets.length)];
        if (target === undefined) return undefined; // nothing provisioned yet
        const repeat = references.length > 0 && Math.random() < DUPLICATE_SHARE;
        const reference = repeat ? references[Math.floor(Math.random() * references.length)]! : randomUUID();
        const body = JSON.stringify({
          date: Date.now(),
          amount: '0.001',
          currency: target.currency,
          subscriptionType: INCOMING_TRANSACTION,
          accountId: target.accountId,
          reference,
          txId: randomBytes(32).toString('hex'),
          blockHeight: 1_000_000,
          to: target.address,
        });
        const signature = createHmac('sha512', config.TATUM_WEBHOOK_HMAC_SECRET).update(body).digest('base64');
        const answer = await request(agent, url(WEBHOOK_PATH), { body, headers: { 'x-payload-hash': signature } });
        if (answer.status !== 200) return false;
        const outcome = (JSON.parse(answer.body) as { status: string }).status;
        if (!repeat) references.push(reference);
        uniqueStored.add(reference);
        return outcome === (repeat ? 'duplicate' : 'stored');
      },
    };
    const rates: Record<Operation, number> = {
      verify: options['verifies-per-second'],
      read: options['reads-per-second'],
      stats: options['stats-per-second'],
      webhook: options['webhooks-per-second'],
    };

    // Accounts a deposit can name: refreshed every few seconds from the database.
    const refreshTargets = async () => {
      targets = await withClient(database.url, async (c) =>
        (await c.query<DepositTarget>(`
          select va.tatum_account_id as "accountId", va.currency, da.address
          from virtual_accounts va join deposit_addresses da on da.id = va.deposit_address_id
          where va.status = 'ready'
          order by random() limit 500`)).rows,
      );
    };

    const periods: Period[] = [newPeriod(1)];
    const current = () => periods.at(-1)!;
    const inFlight = new Set<Promise<void>>();
    const running: Record<Operation, number> = { verify: 0, read: 0, stats: 0, webhook: 0 };
    const fire = (operation: Operation) => {
      const period = current();
      if (running[operation] >= MAX_IN_FLIGHT || (operation === 'verify' && nextEmail >= emails.length)) {
        period.errors[operation]++;
        return;
      }
      running[operation]++;
      const task = operations[operation]()
        .catch(() => false)
        .then((ok) => {
          if (ok === true) period.done[operation]++;
          if (ok === false) period.errors[operation]++;
        })
        .finally(() => {
          running[operation]--;
          inFlight.delete(task);
        });
      inFlight.add(task);
    };

    console.error(`soak: ${options.minutes} min, ${OPERATIONS.map((o) => `${rates[o]} ${o}/s`).join(', ')}; periods of ${periodMs / 1000} s`);
    const started = Date.now();
    // Open loop: each operation fires on its own schedule, whatever the answers' timing.
    const timers = OPERATIONS.filter((o) => rates[o] > 0).map((o) => setInterval(() => fire(o), 1000 / rates[o]));
    const targetTimer = setInterval(() => void refreshTargets().catch(() => {}), 3000);
    const rows: string[][] = [['period', 'server RSS MiB', 'worker RSS MiB', ...OPERATIONS.map((o) => `${o} ok/err`)]];
    const row = (p: Period) => [
      periodMs === 60_000 ? `minute ${p.index}` : `${p.index} (${periodMs / 1000} s)`,
      mib(mean(p.serverRss)),
      mib(mean(p.workerRss)),
      ...OPERATIONS.map((o) => `${p.done[o]}/${p.errors[o]}`),
    ];
    // Printed as each period ends, so in fixed-width columns.
    const print = (cells: string[]) => console.log(cells.map((cell) => cell.padEnd(16)).join('').trimEnd());
    print(rows[0]!);
    // Ctrl-C ends the load early; the periods measured so far are still reported and cleaned up after.
    let interrupted = false;
    const interrupt = () => {
      interrupted = true;
    };
    process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
    while (Date.now() - started < totalMs && !interrupted) {
      await sleep(1000);
      if (interrupted) break; // a terminal's Ctrl-C reaches the children too: they are stopping
      for (const [name, child] of [['server', server.child], ['worker', worker]] as const) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the ${name} process exited during the soak`);
      }
      const elapsed = Date.now() - started;
      const period = current();
      period.serverRss.push(rssKiB(server.child.pid!));
      period.workerRss.push(rssKiB(worker.pid!));
      if (elapsed >= period.index * periodMs - 500 && elapsed < totalMs - 500) {
        rows.push(row(period));
        print(rows.at(-1)!);
        periods.push(newPeriod(period.index + 1));
      }
    }
    for (const timer of [...timers, targetTimer]) clearInterval(timer);
    await Promise.all([...inFlight]);
    rows.push(row(current()));
    print(rows.at(-1)!);
    agent.destroy();

    // Once the load stops, the system must catch up: every verified user ready, every deposit stored.
    const verified = sessions.length;
    const settled = await settle(database.url, verified, uniqueStored.size, 60_000);

    const second = periods[1] ?? periods[0]!;
    const last = periods.at(-1)!;
    const drift = (pick: (p: Period) => number[]) => mean(pick(last)) / mean(pick(second)) - 1;
    const serverDrift = drift((p) => p.serverRss);
    const workerDrift = drift((p) => p.workerRss);
    const flat = Math.abs(serverDrift) <= FLAT && Math.abs(workerDrift) <= FLAT;
    const errors = periods.reduce((sum, p) => sum + OPERATIONS.reduce((s, o) => s + p.errors[o], 0), 0);
    const caughtUp = settled.readyUsers === verified && settled.deposits === uniqueStored.size;
    const pass = flat && errors === 0 && caughtUp;
    const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
    const checks = [
      ['RSS flat (last period vs second, within 10 %)', `server ${pct(serverDrift)}, worker ${pct(workerDrift)}`, flat ? 'PASS' : 'FAIL'],
      ['requests answered as expected', `${errors} errors`, errors === 0 ? 'PASS' : 'FAIL'],
      ['caught up after the load', `${settled.readyUsers}/${verified} verified users ready, ${settled.deposits}/${uniqueStored.size} unique deposits stored`, caughtUp ? 'PASS' : 'FAIL'],
    ];
    const report = `${table(checks)}\n\nsoak: ${pass ? 'PASS' : 'FAIL'}`;
    const markdown = [
      `## Soak, ${options.minutes} min`,
      '',
      `\`npm run soak -- --minutes ${options.minutes}\` (bench/soak.ts), ${new Date().toISOString()}: ` +
        `${OPERATIONS.map((o) => `${rates[o]} ${o}/s`).join(', ')} against the server and one worker process; sandbox latency ${options['latency-ms']} ms.`,
      '',
      markdownTable(rows),
      '',
      markdownTable([['check', 'figure', 'result'], ...checks]),
      '',
      `Verdict: **${pass ? 'PASS' : 'FAIL'}**`,
    ].join('\n');
    return { report, markdown, pass };
  } finally {
    await Promise.all(children.map((child) => stopProcess(child)));
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Polls until every verified user is ready and every unique deposit stored, or the deadline passes. */
async function settle(databaseUrl: string, verified: number, deposits: number, deadlineMs: number): Promise<{ readyUsers: number; deposits: number }> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const state = await withClient(databaseUrl, async (c) => {
      const { rows } = await c.query<{ ready: number; deposits: number }>(`
        select (select count(*)::int from users u where u.email_verified_at is not null
                  and not exists (select 1 from virtual_accounts va where va.user_id = u.id and va.status <> 'ready')
                  and exists (select 1 from virtual_accounts va where va.user_id = u.id)) as ready,
               (select count(*)::int from deposits) as deposits`);
      return { readyUsers: rows[0]!.ready, deposits: rows[0]!.deposits };
    });
    if ((state.readyUsers === verified && state.deposits === deposits) || Date.now() > until) return state;
    await sleep(500);
  }
}

function trpcData<T>(answer: HttpAnswer): T {
  return (JSON.parse(answer.body) as { result: { data: { json: T } } }).result.data.json;
}

const options = parseFlags(Flags);
const { report, markdown, pass } = await soak(options);
console.log(`\n${report}`);
if (options.results) {
  writeResultsSection(options.results, `soak-${options.minutes}min`, markdown);
  console.log(`wrote the ${options.minutes}-minute soak section of ${options.results}`);
}
process.exitCode = pass ? 0 : 1;
