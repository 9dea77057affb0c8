// A rate limit shared by every process on every machine: each caller reserves the next free slot in
// one row of `rate_limits`, then waits for it. Slots are `spacing` apart, so no window of any length
// holds more than its share. The job-start limiter (jobs/limiter.ts) and TATUM_MAX_RPS
// (jobs/tatum/rate-limit.ts) are both this, with their own spacing.
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { queryRows, type Executor } from '../db/client.ts';

export interface ReservedSlot {
  /** Start of the reserved slot, microseconds since the epoch on the database clock. */
  slotAtMicros: number;
  /** How long the caller must wait for it (0 when the slot has already begun). */
  waitMs: number;
}

export interface SlotLimiter {
  readonly spacingMicros: number;
  /** Resolves when the caller may go; each call consumes one slot. */
  acquire(): Promise<void>;
  /** Takes the next slot without waiting for it. */
  reserve(): Promise<ReservedSlot>;
  /** Nobody, in any process, gets a slot earlier than `ms` from now. */
  pushBack(ms: number): Promise<void>;
}

/** `db` must be the database, not a transaction: the row lock is held only for the one statement. */
export function createSlotLimiter(db: Executor, options: { name: string; spacingMicros: number }): SlotLimiter {
  const { name, spacingMicros } = options;
  if (!(spacingMicros > 0)) throw new RangeError(`slot spacing must be positive, got ${spacingMicros}`);

  async function reserve(): Promise<ReservedSlot> {
    const [row] = await queryRows<{ slot_us: number; wait_ms: number }>(db, reserveSlot(name, spacingMicros));
    return { slotAtMicros: Number(row!.slot_us), waitMs: Math.max(0, Number(row!.wait_ms)) };
  }

  return {
    spacingMicros,
    reserve,
    async acquire() {
      const { waitMs } = await reserve();
      if (waitMs > 0) await sleep(waitMs);
    },
    async pushBack(ms) {
      await queryRows(db, pushBackSlots(name, ms));
    },
  };
}

const micros = (n: number) => sql`(${n}::float8 * interval '1 microsecond')`;

/**
 * Reserves the next slot in one atomic statement: the slot starts at the later of "now" and the
 * row's next free slot, and the row moves one spacing past it. Concurrent callers in any process are
 * serialised by the row lock, so each gets a distinct slot, `spacing` apart. `returning` sees the new
 * row, so the reserved start is `next_slot_at - spacing`. Times come from the database clock, so
 * machines with skewed clocks still agree.
 */
function reserveSlot(name: string, spacingMicros: number) {
  const spacing = micros(spacingMicros);
  return sql`
    insert into rate_limits as r (name, next_slot_at)
    values (${name}, clock_timestamp() + ${spacing})
    on conflict (name) do update
      set next_slot_at = greatest(r.next_slot_at, clock_timestamp()) + ${spacing}
    returning
      (extract(epoch from r.next_slot_at - ${spacing}) * 1000000)::float8 as slot_us,
      (extract(epoch from r.next_slot_at - ${spacing} - clock_timestamp()) * 1000)::float8 as wait_ms`;
}

/** Moves the next free slot to at least `ms` from now; never earlier than already reserved. */
function pushBackSlots(name: string, ms: number) {
  const delay = micros(Math.ceil(ms * 1000));
  return sql`
    insert into rate_limits as r (name, next_slot_at)
    values (${name}, clock_timestamp() + ${delay})
    on conflict (name) do update
      set next_slot_at = greatest(r.next_slot_at, clock_timestamp() + ${delay})`;
}
