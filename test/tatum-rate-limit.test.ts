// TATUM_MAX_RPS holds across processes: two limiters on two separate pools (two "processes") share
// one row of rate_limits. Asserted on the reserved slots (database clock), not on sleeps.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type DatabaseHandle } from '../db/client.ts';
import { parseConfig } from '../jobs/config.ts';
import { createTatumClient } from '../jobs/tatum/client.ts';
import { createTatumRateLimiter } from '../jobs/tatum/rate-limit.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { startTestSandbox, TEST_XPUBS, type TestSandbox } from './helpers/sandbox.ts';

let database: TestDatabase & { handle: DatabaseHandle };
let second: DatabaseHandle;
let sandbox: TestSandbox;

beforeAll(async () => {
  database = await createTestDatabase();
  second = await openDatabase({ url: database.url, dataDir: '.data/unused', poolMax: 5 });
  sandbox = await startTestSandbox();
});
afterAll(async () => {
  await sandbox.close();
  await second.close();
  await database.drop();
});

const dbNowMicros = async () =>
  Number((await database.query<{ now_us: number }>('select (extract(epoch from clock_timestamp()) * 1000000)::float8 as now_us')).rows[0]!.now_us);

describe('global Tatum rate limit', () => {
  it('two processes issuing N requests at R rps get slots at least 1/R apart', async () => {
    const rps = 20;
    const perProcess = 10;
    const a = createTatumRateLimiter(database.handle.db, { maxRps: rps, name: 'spacing' });
    const b = createTatumRateLimiter(second.db, { maxRps: rps, name: 'spacing' });
    const slots = await Promise.all(
      Array.from({ length: perProcess }, () => [a.reserve(), b.reserve()]).flat(),
    );
    const times = slots.map((s) => s.slotAtMicros).sort((x, y) => x - y);
    const minSpacing = 1_000_000 / rps;
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(minSpacing);
    // N requests at R rps span at least (N - 1) / R seconds.
    expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual(((times.length - 1) / rps) * 1_000_000);
  });

  it('a slot is never reserved in the past: an idle limiter starts now', async () => {
    const limiter = createTatumRateLimiter(database.handle.db, { maxRps: 5, name: 'idle' });
    const before = await dbNowMicros();
    const slot = await limiter.reserve();
    expect(slot.slotAtMicros).toBeGreaterThanOrEqual(before);
    expect(slot.waitMs).toBe(0);
  });

  it('a 429 pushes the next slot forward for every process', async () => {
    const a = createTatumRateLimiter(database.handle.db, { maxRps: 100, name: 'pushed' });
    const b = createTatumRateLimiter(second.db, { maxRps: 100, name: 'pushed' });
    await a.reserve();
    const before = await dbNowMicros();
    await a.pushBack(3000);
    const next = await b.reserve();
    expect(next.slotAtMicros).toBeGreaterThanOrEqual(before + 3_000_000);
    expect(next.waitMs).toBeGreaterThan(2000);
  });

  it('the client takes a slot for every attempt and shares each 429 through the limiter', async () => {
    const limiter = createTatumRateLimiter(database.handle.db, { maxRps: 50, name: 'client' });
    const acquired: number[] = [];
    const pushedBack: number[] = [];
    // The real limiter, observed: every call goes through to Postgres.
    const observed = {
      acquire: () => (acquired.push(Date.now()), limiter.acquire()),
      pushBack: (ms: number) => (pushedBack.push(ms), limiter.pushBack(ms)),
    };
    const statuses: (number | string)[] = [];
    sandbox.configure({ rateLimitRps: 1 });
    const client = sandbox.client({ rateLimiter: observed, retry: { attempts: 3, baseDelayMs: 20 }, onRequest: (e) => statuses.push(e.status) });

    const accounts = await Promise.all([1, 2].map(() => client.createAccount({ currency: 'ETH', xpub: TEST_XPUBS.ethereum })));
    expect(accounts).toHaveLength(2);
    expect(acquired).toHaveLength(statuses.length);
    const refused = statuses.filter((s) => s === 429).length;
    expect(refused).toBeGreaterThan(0);
    // Retry-After: 1 from the sandbox, pushed to the shared row once per 429.
    expect(pushedBack).toEqual(Array(refused).fill(1000));
  });

  it('createTatumClient: the sandbox key and URL in sandbox mode, the shared limiter row, no silent default URL', async () => {
    const config = parseConfig({ TATUM_MAX_RPS: '50' });
    expect(() => createTatumClient(config, database.handle.db)).toThrow(/sandbox URL/);

    sandbox.configure({ rateLimitRps: null });
    const client = createTatumClient(config, database.handle.db, { sandboxUrl: sandbox.url });
    await client.createAccount({ currency: 'BTC' });
    const { rows } = await database.query("select name from rate_limits where name = 'tatum'");
    expect(rows).toHaveLength(1);
  });
});
