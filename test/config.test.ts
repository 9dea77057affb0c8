import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, EXAMPLE_ENCRYPTION_KEY, parseConfig, readEnvironment } from '../jobs/config.ts';

function problemsOf(env: Record<string, string>): string[] {
  try {
    parseConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

const LIVE = {
  TATUM_API_KEY: 't-66a0-live-key',
  ENCRYPTION_KEY: 'k'.repeat(32),
  TATUM_WEBHOOK_URL: 'https://api.example.com/webhooks/tatum',
  TATUM_WEBHOOK_HMAC_SECRET: 'a-long-webhook-secret',
  ADMIN_TOKEN: 'an-admin-token-of-some-length',
};

describe('configuration', () => {
  it('defaults to the embedded database and the Tatum sandbox', () => {
    const config = parseConfig({});
    expect(config.mode).toBe('sandbox');
    expect(config.database).toBe('pglite');
    expect(config.QUEUE_ATTEMPTS).toBe(3);
    expect(config.QUEUE_BACKOFF_MS).toBe(5000);
    expect(config.QUEUE_MAX_JOBS).toBe(10);
    expect(config.QUEUE_INTERVAL).toBe(1000);
  });

  it('parses every documented variable, including REDIS_URL (pitfall #13)', () => {
    const config = parseConfig({
      ...LIVE,
      DATABASE_URL: 'postgres://u:p@db:5432/app',
      REDIS_URL: 'redis://:secret@cache:6380/2',
      QUEUE_CONCURRENCY: '4',
      QUEUE_MAX_JOBS: '20',
      QUEUE_INTERVAL: '500',
      TATUM_MAX_RPS: '2.5',
      ENCRYPTION_KEYS_OLD: `${'a'.repeat(64)}, ${'o'.repeat(32)}`,
      PGBOSS_BACKEND: 'citus',
    });
    expect(config.mode).toBe('live');
    expect(config.database).toBe('postgres');
    expect(config.REDIS_URL).toBe('redis://:secret@cache:6380/2');
    expect(config.QUEUE_CONCURRENCY).toBe(4);
    expect(config.QUEUE_MAX_JOBS).toBe(20);
    expect(config.QUEUE_INTERVAL).toBe(500);
    expect(config.TATUM_MAX_RPS).toBe(2.5);
    expect(config.ENCRYPTION_KEYS_OLD).toHaveLength(2);
    expect(config.PGBOSS_BACKEND).toBe('citus');
  });

  it.each([
    ['PORT', 'eighty', 'PORT'],
    ['PORT', '70000', 'PORT'],
    ['DATABASE_URL', 'mysql://localhost/app', 'DATABASE_URL: must be a postgres'],
    ['REDIS_URL', 'localhost:6379', 'REDIS_URL: must be a redis'],
    ['QUEUE_ATTEMPTS', '0', 'QUEUE_ATTEMPTS'],
    ['QUEUE_CONCURRENCY', '1.5', 'QUEUE_CONCURRENCY'],
    ['QUEUE_BACKOFF_MS', '10', 'QUEUE_BACKOFF_MS'],
    ['TATUM_MAX_RPS', '-1', 'TATUM_MAX_RPS'],
    ['TATUM_BASE_URL', 'api.tatum.io', 'TATUM_BASE_URL: must be an http'],
    ['ENCRYPTION_KEY', 'too-short', 'ENCRYPTION_KEY: must be 32 characters'],
    ['ENCRYPTION_KEY', EXAMPLE_ENCRYPTION_KEY, 'ENCRYPTION_KEY: is the placeholder'],
    ['ENCRYPTION_KEYS_OLD', 'short', 'ENCRYPTION_KEYS_OLD'],
    ['LOG_LEVEL', 'loud', 'LOG_LEVEL'],
    ['PGBOSS_BACKEND', 'mysql', 'PGBOSS_BACKEND'],
    ['SMTP_URL', 'http://mail', 'SMTP_URL: must be an smtp'],
  ])('%s=%s is refused with a message naming it', (name, value, expected) => {
    const problems = problemsOf({ [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(expected);
  });

  it('names every problem at once, in one message', () => {
    let message = '';
    try {
      parseConfig({ PORT: 'x', QUEUE_ATTEMPTS: 'none', DATABASE_URL: 'nope' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^Invalid configuration:/);
    for (const name of ['PORT', 'QUEUE_ATTEMPTS', 'DATABASE_URL']) expect(message).toContain(`- ${name}`);
  });

  it('in live mode requires the secrets the sandbox would generate (pitfalls #9, #15)', () => {
    const problems = problemsOf({ TATUM_API_KEY: LIVE.TATUM_API_KEY });
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual(
      ['ADMIN_TOKEN', 'ENCRYPTION_KEY', 'TATUM_WEBHOOK_HMAC_SECRET', 'TATUM_WEBHOOK_URL'].sort(),
    );
    expect(() => parseConfig(LIVE)).not.toThrow();
  });

  it('accepts a key as 32 characters, 64 hex digits or 32 bytes of base64', () => {
    for (const key of ['x'.repeat(32), 'ab'.repeat(32), Buffer.alloc(32, 7).toString('base64')]) {
      expect(parseConfig({ ...LIVE, ENCRYPTION_KEY: key }).ENCRYPTION_KEY).toBe(key);
    }
  });

  it('treats an empty value as unset', () => {
    expect(parseConfig({ DATABASE_URL: '', PORT: '' }).database).toBe('pglite');
  });

  it('reads .env, and the real environment wins over it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'config-'));
    writeFileSync(path.join(dir, '.env'), 'PORT=4000\nLOG_LEVEL=debug\n# a comment\n');
    const env = readEnvironment(dir, { PORT: '5000' });
    expect(parseConfig(env)).toMatchObject({ PORT: 5000, LOG_LEVEL: 'debug' });
  });
});
