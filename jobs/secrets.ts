// Sandbox mode must work on a bare machine, so the secrets it lacks are generated once, kept under
// DATA_DIR (git-ignored, mode 0600) and announced with a warning. Live mode never gets here with a
// secret missing: the config schema refuses to start.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';

const GENERATED = ['ENCRYPTION_KEY', 'TATUM_WEBHOOK_HMAC_SECRET', 'ADMIN_TOKEN'] as const;
type GeneratedSecret = (typeof GENERATED)[number];

/** Configuration once every secret is known. */
export type RuntimeConfig = Config & Record<GeneratedSecret, string>;

export function secretsFile(config: Config): string {
  return path.resolve(config.DATA_DIR, 'sandbox-secrets.json');
}

export function resolveSecrets(config: Config, log: Logger): RuntimeConfig {
  const missing = GENERATED.filter((name) => config[name] === undefined);
  if (missing.length === 0) return config as RuntimeConfig;
  if (config.mode === 'live') throw new Error(`live mode without ${missing.join(', ')}`); // the schema prevents this

  const stored = readOrCreateSecrets(secretsFile(config), log);
  return { ...config, ...Object.fromEntries(missing.map((name) => [name, stored[name]])) } as RuntimeConfig;
}

/** Creates the file exclusively, so two processes starting together end up with the same secrets. */
function readOrCreateSecrets(file: string, log: Logger): Record<GeneratedSecret, string> {
  if (!existsSync(file)) {
    const fresh = Object.fromEntries(GENERATED.map((name) => [name, randomBytes(32).toString('hex')]));
    mkdirSync(path.dirname(file), { recursive: true });
    try {
      writeFileSync(file, `${JSON.stringify(fresh, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
      log.warn({ file }, 'sandbox mode: generated ENCRYPTION_KEY, TATUM_WEBHOOK_HMAC_SECRET and ADMIN_TOKEN; set them in the environment for anything real');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return JSON.parse(readFileSync(file, 'utf8'));
}
