// The seed's job limiter (QUEUE_MAX_JOBS per QUEUE_INTERVAL ms), enforced across every worker process
// on every machine: each job start takes the next start slot (jobs/slot-limiter.ts). Slots are spaced
// evenly, so no interval ever holds more than the limit.
import type { Executor } from '../db/client.ts';
import { createSlotLimiter } from './slot-limiter.ts';

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
  const spacingMicros = Math.ceil(((options.intervalMs * 1000) / options.maxJobs) * JITTER_MARGIN);
  return createSlotLimiter(db, { name: options.name, spacingMicros });
}
