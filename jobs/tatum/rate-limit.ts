// TATUM_MAX_RPS for the whole deployment, not per process: every worker reserves its request slot in
// one row of `rate_limits` (jobs/slot-limiter.ts), so N processes together never exceed the plan's
// rate. A 429 pushes the row forward, which makes every process hold off, not just the one refused.
import type { Executor } from '../../db/client.ts';
import { createSlotLimiter, type SlotLimiter } from '../slot-limiter.ts';

export type { ReservedSlot } from '../slot-limiter.ts';

/** What the client needs: a slot per request, and a shared hold-off on 429. */
export type RateLimiter = Pick<SlotLimiter, 'acquire' | 'pushBack'>;
export type TatumRateLimiter = SlotLimiter;

export interface RateLimiterOptions {
  maxRps: number;
  /** The `rate_limits` row; processes sharing a name share one budget (one per Tatum API key). */
  name?: string;
}

// The request leaves a little after its slot starts (timer and event-loop delay), so a late request
// followed by a punctual one could land closer than 1/maxRps at Tatum; 2 % extra spacing absorbs that.
const JITTER_MARGIN = 1.02;

export function createTatumRateLimiter(db: Executor, options: RateLimiterOptions): TatumRateLimiter {
  if (!(options.maxRps > 0)) throw new RangeError(`maxRps must be positive, got ${options.maxRps}`);
  return createSlotLimiter(db, { name: options.name ?? 'tatum', spacingMicros: Math.ceil((1_000_000 / options.maxRps) * JITTER_MARGIN) });
}
