// pg-boss on the application's own database (a pg pool's URL, or the embedded PGlite), so a job can
// be created inside the same transaction as the rows it depends on.
import { sql } from 'drizzle-orm';
import { fromDrizzle, PgBoss, type Db, type DrizzleTransactionLike } from 'pg-boss';
import type { DatabaseHandle, Executor } from '../db/client.ts';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';

export { PgBoss };

export interface BossOptions {
  /** False for processes that only send jobs; the supervisor/scheduler runs in workers. */
  supervise?: boolean;
  max?: number;
}

export function createBoss(handle: DatabaseHandle, config: Config, log: Logger, options: BossOptions = {}): PgBoss {
  const boss = new PgBoss({
    ...handle.bossConnection,
    ...(handle.kind === 'postgres' ? { backend: config.PGBOSS_BACKEND, max: options.max ?? config.DATABASE_POOL_MAX } : {}),
    schema: 'pgboss',
    useListenNotify: true,
    supervise: options.supervise ?? true,
    schedule: options.supervise ?? true,
    // The monitor pass is what fails a job whose worker stopped heartbeating (see HEARTBEAT_SECONDS in
    // jobs/queues.ts); every 10 s instead of every 60 s keeps a killed worker's job retried within a minute.
    superviseIntervalSeconds: 10,
    monitorIntervalSeconds: 10,
  });
  boss.on('error', (err) => log.error({ err }, 'pg-boss error'));
  boss.on('warning', (warning) => log.warn({ warning }, 'pg-boss warning'));
  return boss;
}

/**
 * pg-boss statements inside a drizzle transaction (`boss.send(name, data, { db: bossDb(tx) })`), so a
 * job commits or rolls back together with the rows it depends on.
 */
export function bossDb(tx: Executor): Db {
  // drizzle types execute()'s result as unknown for a generic driver; both drivers return { rows }.
  return fromDrizzle(tx as unknown as DrizzleTransactionLike, sql);
}
