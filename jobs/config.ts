// The one place that reads the environment. Every documented variable is parsed here, once, by a
// single zod schema; a bad or missing value stops start-up with one message naming each problem.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { z } from 'zod';

// The placeholder shipped in .env.example: accepted nowhere outside the sandbox.
export const EXAMPLE_ENCRYPTION_KEY = 'change-me-32-characters-long-key';

export const CHAINS = ['bitcoin', 'ethereum', 'tron', 'bsc', 'litecoin'] as const;
export type Chain = (typeof CHAINS)[number];

export const PGBOSS_BACKENDS = ['postgres', 'citus', 'cockroachdb', 'yugabytedb'] as const;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

const postgresUrl = z
  .url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// or postgresql:// URL' });
const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });

/**
 * An encryption key is 32 bytes: a 32-character string (the seed's format, its UTF-8 bytes), or
 * 32 bytes written as 64 hex digits or as base64.
 */
export function parseEncryptionKey(value: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(value)) return Buffer.from(value, 'hex');
  if (Buffer.byteLength(value, 'utf8') === 32) return Buffer.from(value, 'utf8');
  if (/^[A-Za-z0-9+/]{43}=?$/.test(value)) {
    const bytes = Buffer.from(value, 'base64');
    if (bytes.length === 32) return bytes;
  }
  return undefined;
}

const encryptionKey = z.string().refine((v) => parseEncryptionKey(v) !== undefined, {
  error: 'must be 32 characters, or 32 bytes as 64 hex digits or base64',
});

const envSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    PORT: int(0, 65535).default(3000),
    HOST: z.string().min(1).default('127.0.0.1'),
    LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
    DATA_DIR: z.string().min(1).default('.data'),

    DATABASE_URL: postgresUrl.optional(),
    DATABASE_POOL_MAX: int(1, 1000).default(10),
    PGBOSS_BACKEND: z.enum(PGBOSS_BACKENDS).default('postgres'),
    REDIS_URL: z.url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' }).optional(),

    ENCRYPTION_KEY: encryptionKey.optional(),
    ENCRYPTION_KEYS_OLD: z
      .string()
      .transform((v) => v.split(',').map((k) => k.trim()).filter(Boolean))
      .pipe(z.array(encryptionKey))
      .default([]),

    TATUM_API_KEY: z.string().min(8).max(200).optional(),
    TATUM_BASE_URL: httpUrl.optional(),
    TATUM_WEBHOOK_URL: httpUrl.optional(),
    TATUM_WEBHOOK_HMAC_SECRET: z.string().min(16).max(100).optional(),
    TATUM_MAX_RPS: z.coerce.number().positive().max(10_000).default(5),
    TATUM_TIMEOUT_MS: int(100, 120_000).default(10_000),

    QUEUE_CONCURRENCY: int(1, 1000).default(1),
    WORKER_METRICS_PORT: int(1, 65535).optional(),
    QUEUE_MAX_JOBS: int(1, 1_000_000).default(10),
    QUEUE_INTERVAL: int(1, 3_600_000).default(1000),
    QUEUE_ATTEMPTS: int(1, 100).default(3),
    QUEUE_BACKOFF_MS: int(1000, 86_400_000).default(5000),
    QUEUE_STATS_CACHE_MS: int(0, 3_600_000).default(1000),
    RECONCILE_CRON: z.string().min(9).default('*/5 * * * *'),

    ADMIN_TOKEN: z.string().min(16).max(200).optional(),
    SMTP_URL: z.url({ protocol: /^smtps?$/, error: 'must be an smtp:// or smtps:// URL' }).optional(),
    MAIL_FROM: z.string().regex(/^[^\s@]+@[^\s@]+$/, 'must be an email address').default('no-reply@localhost'),
  })
  .superRefine((env, ctx) => {
    if (env.ENCRYPTION_KEY === EXAMPLE_ENCRYPTION_KEY) {
      ctx.addIssue({ code: 'custom', path: ['ENCRYPTION_KEY'], message: 'is the placeholder from .env.example; generate a real key' });
    }
    if (env.TATUM_API_KEY === undefined) return; // sandbox mode: missing secrets are generated on first start
    const need = (key: keyof typeof env, why: string) => {
      if (env[key] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: `is required when TATUM_API_KEY is set (${why})` });
    };
    need('ENCRYPTION_KEY', 'private keys are encrypted with it');
    need('TATUM_WEBHOOK_URL', 'Tatum must know where to post deposits');
    need('TATUM_WEBHOOK_HMAC_SECRET', 'webhooks are authenticated with it');
    need('ADMIN_TOKEN', 'admin procedures require it');
  });

export type Env = z.infer<typeof envSchema>;

export type Config = Env & {
  /** `sandbox` when TATUM_API_KEY is unset: the local Tatum sandbox stands in for Tatum. */
  mode: 'sandbox' | 'live';
  /** `pglite` when DATABASE_URL is unset: an embedded Postgres persisted under DATA_DIR. */
  database: 'postgres' | 'pglite';
};

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Reads `.env` (if present) under the real environment: a variable set in the environment wins. */
export function readEnvironment(cwd = process.cwd(), env: NodeJS.ProcessEnv = process.env): Record<string, string | undefined> {
  const file = path.join(cwd, '.env');
  const fromFile = existsSync(file) ? parseEnv(readFileSync(file, 'utf8')) : {};
  return { ...fromFile, ...env };
}

export function parseConfig(raw: Record<string, string | undefined>): Config {
  // An empty value means "unset", as in most dotenv tooling.
  const present = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.join('.') || '(environment)'}: ${issue.message}`),
    );
  }
  return {
    ...parsed.data,
    mode: parsed.data.TATUM_API_KEY === undefined ? 'sandbox' : 'live',
    database: parsed.data.DATABASE_URL === undefined ? 'pglite' : 'postgres',
  };
}

/** Where Tatum posts deposits: the server's own route. */
export const WEBHOOK_PATH = '/webhooks/tatum';

/**
 * TATUM_WEBHOOK_URL; in the sandbox, unset means this machine's server (live mode requires it set).
 */
export function webhookUrlOf(config: Pick<Config, 'TATUM_WEBHOOK_URL' | 'HOST' | 'PORT'>): string {
  return config.TATUM_WEBHOOK_URL ?? `http://${config.HOST}:${config.PORT}${WEBHOOK_PATH}`;
}

export function loadConfig(): Config {
  return parseConfig(readEnvironment());
}
