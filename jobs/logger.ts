// One pino logger for every process: pretty on a terminal, JSON otherwise. Secrets are redacted by
// key wherever they sit in a logged object, so a careless `log.info({ user })` cannot leak them.
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export const REDACTED_KEYS = [
  'privateKey',
  'private_key',
  'privateKeyEncrypted',
  'mnemonic',
  'mnemonicEncrypted',
  'password',
  'secret',
  'hmacSecret',
  'token',
  'sessionToken',
  'adminToken',
  'verificationCode',
  'apiKey',
  'encryptionKey',
  'authorization',
  'x-api-key',
  'cookie',
];

const redactPaths = REDACTED_KEYS.flatMap((key) => {
  const k = /^[A-Za-z_$][\w$]*$/.test(key) ? key : `["${key}"]`;
  const dot = k.startsWith('[') ? '' : '.';
  return [k, `*${dot}${k}`, `*.*${dot}${k}`];
});

function prettyAvailable(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false; // production installs without devDependencies log JSON
  }
}

export function createLogger(options: { level: string; name?: string; pretty?: boolean; destination?: DestinationStream }): Logger {
  const pretty = options.destination === undefined && (options.pretty ?? process.stdout.isTTY) && prettyAvailable();
  const settings = {
    level: options.level,
    name: options.name,
    redact: { paths: redactPaths, censor: '[redacted]' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true } } } : {}),
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}
