// The sandbox's test and benchmark knobs: latency, a 429 rate limit, fault injection, a wrong-address
// mode and webhook retry timing. Set at start and changeable at runtime (POST /sandbox/config), so a
// fault test can flip them between steps. Faults draw from a seeded generator: a seed replays a run.
import { z } from 'zod';

/** The Tatum writes that create ledger entities: where a lost response makes naive retries duplicate. */
export const CREATE_ROUTES = [
  'POST /v3/ledger/account',
  'POST /v3/ledger/account/batch',
  'POST /v3/offchain/account/:id/address',
  'POST /v3/offchain/account/address/batch',
  'POST /v3/subscription',
] as const;

const fraction = z.number().min(0).max(1);

export const SandboxKnobs = z
  .object({
    /** Added before every Tatum route answers. */
    latencyMs: z.number().int().min(0).max(600_000).default(0),
    /** Requests per second (sliding 1 s window) before answering 429 with Retry-After; null = none. */
    rateLimitRps: z.number().positive().nullable().default(null),
    /** Fractions of requests to `faultRoutes` that fail: 500 before the ledger, no answer, applied
     * on the ledger and then the response lost, or applied and answered 200 with a body that is not
     * Tatum's (a misbehaving proxy). */
    error500Rate: fraction.default(0),
    timeoutRate: fraction.default(0),
    dropAfterCommitRate: fraction.default(0),
    malformedRate: fraction.default(0),
    /** Route keys ('METHOD /template') faults apply to. */
    faultRoutes: z.array(z.string()).default([...CREATE_ROUTES]),
    /** How a committed request loses its response: the socket is reset, a 500 is answered, or
     * nothing is answered until `timeoutHoldMs` (the client times out). */
    dropStyle: z.enum(['reset', '500', 'hold']).default('reset'),
    /** How long a timeout fault holds the request before dropping the connection. */
    timeoutHoldMs: z.number().int().min(0).default(60_000),
    /** Address generation answers the address of index + 1 (for the key/address mismatch guard). */
    wrongAddress: z.boolean().default(false),
    /** Seed of the fault generator. */
    seed: z.number().int().default(1),
    /** Tatum's retry gaps (15 s * 2.7925^n) are divided by this. */
    webhookCompression: z.number().min(1).default(1),
    webhookRetries: z.number().int().min(0).max(9).default(9),
    webhookTimeoutMs: z.number().int().min(1).max(600_000).default(10_000),
  })
  .refine((k) => k.error500Rate + k.timeoutRate + k.dropAfterCommitRate + k.malformedRate <= 1, {
    error: 'error500Rate + timeoutRate + dropAfterCommitRate + malformedRate must not exceed 1',
  });
export type SandboxKnobs = z.infer<typeof SandboxKnobs>;
export type SandboxKnobsInput = z.input<typeof SandboxKnobs>;

/** A runtime change: any subset of the knobs. Unknown names are refused, not ignored. */
export const SandboxKnobsPatch = z
  .object({
    latencyMs: z.number(),
    rateLimitRps: z.number().nullable(),
    error500Rate: z.number(),
    timeoutRate: z.number(),
    dropAfterCommitRate: z.number(),
    malformedRate: z.number(),
    faultRoutes: z.array(z.string()),
    dropStyle: z.string(),
    timeoutHoldMs: z.number(),
    wrongAddress: z.boolean(),
    seed: z.number(),
    webhookCompression: z.number(),
    webhookRetries: z.number(),
    webhookTimeoutMs: z.number(),
  })
  .partial()
  .strict();

export type Fault = 'error500' | 'timeout' | 'dropAfterCommit' | 'malformed';

/** mulberry32: tiny, fast and good enough to pick faults reproducibly. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One draw per request to a fault route decides its fate. */
export function pickFault(knobs: SandboxKnobs, routeKey: string, random: () => number): Fault | undefined {
  if (!knobs.faultRoutes.includes(routeKey)) return undefined;
  const draw = random();
  let threshold = 0;
  for (const [fault, rate] of [
    ['error500', knobs.error500Rate],
    ['timeout', knobs.timeoutRate],
    ['dropAfterCommit', knobs.dropAfterCommitRate],
    ['malformed', knobs.malformedRate],
  ] as const) {
    threshold += rate;
    if (draw < threshold) return fault;
  }
  return undefined;
}
