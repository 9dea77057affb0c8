// The seed's job limiter (QUEUE_MAX_JOBS per QUEUE_INTERVAL ms), enforced across every worker process
// on every machine: each job start reserves the next free start slot in one row of `rate_limits`,
// then waits for it. Slots are spaced evenly, so no interval ever holds more than the limit.
import { sql } from 'drizzle-orm';
import { queryRows, type Executor } from '../db/client.ts';

export interface LimiterOptions {
  /** The `rate_limits` row: every process using the same name shares one budget. */
  name: string;
  maxJobs: number;
  intervalMs: number;
}

export interface Limiter {
  /** Resolves when this caller may start; each call consumes one slot. */
  acquire(): Promise<void>;
}

// A job really starts a little after its slot (timer, event loop, the handler's first query), by a
// varying amount: one start late and the one maxJobs later on time would put maxJobs + 1 starts in
// one interval. 5 % of extra spacing (50 ms per second) absorbs that; the cost is 5 % of throughput.
const JITTER_MARGIN = 1.05;

export function createLimiter(db: Executor, options: LimiterOptions): Limiter {
  const spacingMs = (options.intervalMs / options.maxJobs) * JITTER_MARGIN;
  return {
    async acquire() {
      const [slot] = await queryRows<{ wait_ms: number }>(db, reserveSlot(options.name, spacingMs));
      if (slot!.wait_ms > 0) await new Promise((resolve) => setTimeout(resolve, slot!.wait_ms));
    },
  };
}

/**
 * Takes the next start slot: the later of "now" and the slot after the last one handed out, and moves
 * the row one spacing past it. A single statement on one row, so concurrent callers in any process are
 * serialised by the row lock and each gets its own slot. The wait is computed on the database clock,
 * so workers on machines with skewed clocks still agree.
 */
function reserveSlot(name: string, spacingMs: number) {
  const spacing = sql`(${spacingMs}::float8 * interval '1 millisecond')`;
  return sql`
    insert into rate_limits as r (name, next_slot_at)
    values (${name}, clock_timestamp() + ${spacing})
    on conflict (name) do update
      set next_slot_at = greatest(r.next_slot_at, clock_timestamp()) + ${spacing}
    returning greatest(0, extract(epoch from (r.next_slot_at - ${spacing} - clock_timestamp())) * 1000)::float8 as wait_ms`;
}
