// The create-virtual-account job: make one user complete. (Provisioning itself lands with its own
// issue; until then the handler records that it ran.)
import type { Database } from '../db/client.ts';
import type { Logger } from './logger.ts';
import type { ProvisionJob } from './queues.ts';
import type { RuntimeConfig } from './secrets.ts';

export interface ProvisionDeps {
  db: Database;
  config: RuntimeConfig;
  log: Logger;
}

export async function provisionUser(deps: ProvisionDeps, job: ProvisionJob): Promise<void> {
  deps.log.info({ userId: job.userId }, 'provisioning requested');
}
