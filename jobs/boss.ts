// pg-boss on the application's own database (a pg pool's URL, or the embedded PGlite), so a job can
// be created inside the same transaction as the rows it depends on.
import { PgBoss } from 'pg-boss';
import type { DatabaseHandle } from '../db/client.ts';
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
  });
  boss.on('error', (err) => log.error({ err }, 'pg-boss error'));
  boss.on('warning', (warning) => log.warn({ warning }, 'pg-boss warning'));
  return boss;
}
