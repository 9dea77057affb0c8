// Postgres restart: the machine's Postgres server is restarted (`pg_ctlcluster ... restart`, which
// ends every session) while clients keep verifying. A request that meets the outage gets a 503 that
// says the database is unavailable, within seconds, never a hang or a 500; a client that retries
// afterwards succeeds. Every verify answered 200 ends provisioned, and not one process (server,
// workers) was restarted to get there.
//
// This restarts the whole server, under every database on it: the scenario waits until no other
// test run is using it, and whatever happens, leaves Postgres running.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { call, enabledCurrencies, inParallel, seedUnverifiedUsers, startStack, verifyRequest, waitUntil, count, type Answer, type Stack } from './stack.ts';

const run = promisify(execFile);

const USERS = 200;
const LANES = 4;
const PAUSE_MS = 150;
const READERS = 2;
const HANG_MS = 10_000;

const admin = new URL(inject('adminDatabaseUrl'));
const localCluster = ['127.0.0.1', 'localhost'].includes(admin.hostname) && (admin.port || '5432') === '5432' && clusterVersion() !== undefined;

function clusterVersion(): string | undefined {
  try {
    return readdirSync('/etc/postgresql')[0];
  } catch {
    return undefined;
  }
}

const pgCtlCluster = (action: 'restart' | 'start') => run('pg_ctlcluster', ['--skip-systemctl-redirect', clusterVersion()!, 'main', action]);
const postgresReady = () => run('pg_isready', ['-q', '-h', '127.0.0.1', '-p', '5432']).then(() => true, () => false);

/** The parent process id of `pid`, from /proc (Linux). */
function parentOf(pid: number): number | undefined {
  try {
    return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').at(-1)!.trim().split(' ')[1]);
  } catch {
    return undefined;
  }
}

function lineage(pid: number): number[] {
  const chain: number[] = [];
  for (let p: number | undefined = pid; p !== undefined && p > 1; p = parentOf(p)) chain.push(p);
  return chain;
}

/** Vitest processes on this machine that are not this run (this file's forks share its parent). */
async function otherTestRuns(): Promise<number[]> {
  const { stdout } = await run('pgrep', ['-f', 'vitest']).catch(() => ({ stdout: '' }));
  const ours = new Set(lineage(process.pid));
  return stdout
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((pid) => !ours.has(pid) && !lineage(pid).includes(process.ppid));
}

let stack: Stack;

beforeAll(async () => {
  if (!localCluster) return;
  const others = await waitUntil('no other test run using Postgres', otherTestRuns, (pids) => pids.length === 0, 180_000, 2000);
  expect(others).toEqual([]);
  stack = await startStack({ scenario: 'postgres-restart' });
}, 240_000);
afterAll(async () => {
  if (!localCluster) return;
  if (!(await postgresReady())) await pgCtlCluster('start');
  await waitUntil('Postgres accepting connections', postgresReady, (ready) => ready, 60_000);
  await stack?.stop();
});

interface Attempt extends Answer {
  route: 'auth.verify' | 'wallet.accounts';
  email: string;
  /** Sent while the restart command was running. */
  duringRestart: boolean;
}

describe.skipIf(!localCluster)('Postgres restarted under verify load', () => {
  it('answers 503 within seconds while it is down, and every verify answered 200 is provisioned, no process restarted', async () => {
    const emails = await seedUnverifiedUsers(stack, 'restart', USERS);
    const pids = [stack.server, ...stack.workers].map((p) => p.child.pid);
    const attempts: Attempt[] = [];
    let restarting = false;

    // From before the restart until a few seconds after it, clients verify one user after another,
    // each in its own lane, and signed-in users read their accounts.
    const queue = [...emails];
    let stopAt = Number.POSITIVE_INFINITY;
    let session: { email: string; token: string } | undefined;
    const lane = async (route: Attempt['route'], pauseMs: number) => {
      while (performance.now() < stopAt) {
        const email = route === 'auth.verify' ? queue.shift() : session?.email;
        if (route === 'auth.verify' && email === undefined) return;
        const sentDuringRestart = restarting;
        const answer =
          route === 'auth.verify'
            ? await verifyRequest(stack, email!, HANG_MS + 5000)
            : session === undefined
              ? undefined
              : await call(`${stack.server.url}/trpc/wallet.accounts`, { headers: { authorization: `Bearer ${session.token}` } }, HANG_MS + 5000);
        if (answer) attempts.push({ ...answer, route, email: email!, duringRestart: sentDuringRestart || restarting });
        if (route === 'auth.verify' && answer?.status === 200) session ??= { email: email!, token: JSON.parse(answer.body).result.data.json.sessionToken };
        await sleep(pauseMs);
      }
    };
    const lanes = [
      ...Array.from({ length: LANES }, () => lane('auth.verify', PAUSE_MS)),
      ...Array.from({ length: READERS }, () => lane('wallet.accounts', 20)),
    ];

    await sleep(3000);
    restarting = true;
    const restartStarted = performance.now();
    await pgCtlCluster('restart');
    const restartSeconds = (performance.now() - restartStarted) / 1000;
    restarting = false;
    stopAt = performance.now() + 3000;
    await Promise.all(lanes);

    const failed = attempts.filter((a) => a.status !== 200);
    const slowest = Math.max(...attempts.map((a) => a.ms));
    // The outage was felt, and only as 503s naming the database, each within seconds.
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.every((a) => a.duringRestart)).toBe(true);
    for (const answer of failed) {
      expect(answer.status, answer.body).toBe(503);
      expect(JSON.parse(answer.body).error.json.message).toMatch(/database/i);
    }
    expect(slowest).toBeLessThan(HANG_MS);

    // A client retries what failed (and verifies the users it had not reached): it works now,
    // against the same processes.
    const retried = [...new Set(failed.filter((a) => a.route === 'auth.verify').map((a) => a.email)), ...queue];
    const retries = await inParallel(retried, LANES, (email) => verifyRequest(stack, email));
    expect(retries.filter((a) => a.status !== 200)).toEqual([]);
    expect([stack.server, ...stack.workers].map((p) => [p.child.pid, p.child.exitCode])).toEqual(pids.map((pid) => [pid, null]));

    // Every user verified (each one, once it had its 200) is provisioned.
    const verified = new Set([...attempts.filter((a) => a.route === 'auth.verify' && a.status === 200).map((a) => a.email), ...retried]);
    expect(verified.size).toBe(USERS);
    const currencies = await enabledCurrencies(stack);
    const readyUsers = () =>
      count(
        stack,
        `select count(*)::int as n from (select user_id from virtual_accounts where status = 'ready' group by 1 having count(*) = $1) u`,
        [currencies],
      );
    const provisioned = performance.now();
    await waitUntil('every verified user provisioned', readyUsers, (n) => n === USERS, 180_000);

    const sent = (route: Attempt['route']) => attempts.filter((a) => a.route === route).length;
    const failedOf = (route: Attempt['route']) => failed.filter((a) => a.route === route).length;
    console.info(
      `Postgres restart: ${restartSeconds.toFixed(1)} s (pg_ctlcluster restart) under ${LANES} verifying clients and ${READERS} account readers; ` +
        `${sent('auth.verify')} verifies and ${sent('wallet.accounts')} reads sent, ${failed.length} answered 503 (${failedOf('auth.verify')} verifies, ` +
        `${failedOf('wallet.accounts')} reads; no other failure), slowest answer ${slowest.toFixed(0)} ms; ${retried.length} verifies retried afterwards, all 200; ` +
        `all ${USERS} users provisioned ${((performance.now() - provisioned) / 1000).toFixed(1)} s after the load, same ${pids.length} processes`,
    );
  });
});
