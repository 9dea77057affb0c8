// `npm run tatum:sandbox -- [--port 4010] [--host 127.0.0.1] [--api-key KEY] [--latency-ms N]
//   [--rate-limit-rps N] [--error500-rate F] [--timeout-rate F] [--drop-after-commit-rate F]
//   [--drop-style reset|500|hold] [--seed N] [--webhook-compression N]`
// Starts the Tatum sandbox alone and prints its URL and API key. Sandbox settings are flags, not
// environment variables: jobs/config.ts owns the environment.
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { startSandbox } from './server.ts';

const Flags = z
  .object({
    port: z.coerce.number().int().min(0).max(65535).default(4010),
    host: z.string().min(1).default('127.0.0.1'),
    'api-key': z.string().min(8).optional(),
    'latency-ms': z.coerce.number().optional(),
    'rate-limit-rps': z.coerce.number().optional(),
    'error500-rate': z.coerce.number().optional(),
    'timeout-rate': z.coerce.number().optional(),
    'drop-after-commit-rate': z.coerce.number().optional(),
    'drop-style': z.enum(['reset', '500', 'hold']).optional(),
    seed: z.coerce.number().optional(),
    'webhook-compression': z.coerce.number().optional(),
  })
  .strict();

const names = Object.keys(Flags.shape) as (keyof z.infer<typeof Flags>)[];
const { values } = parseArgs({ options: Object.fromEntries(names.map((name) => [name, { type: 'string' as const }])) });
const parsed = Flags.safeParse(values);
if (!parsed.success) {
  console.error(`Invalid flags:\n${z.prettifyError(parsed.error)}`);
  process.exit(2);
}
const flags = parsed.data;

try {
  const sandbox = await startSandbox({
    port: flags.port,
    host: flags.host,
    apiKey: flags['api-key'],
    latencyMs: flags['latency-ms'],
    rateLimitRps: flags['rate-limit-rps'],
    error500Rate: flags['error500-rate'],
    timeoutRate: flags['timeout-rate'],
    dropAfterCommitRate: flags['drop-after-commit-rate'],
    dropStyle: flags['drop-style'],
    seed: flags.seed,
    webhookCompression: flags['webhook-compression'],
  });
  console.log(`Tatum sandbox listening on ${sandbox.url}`);
  console.log(`API key (x-api-key): ${sandbox.apiKey}`);
  console.log(`Counters: GET ${sandbox.url}/sandbox/counters   State: GET ${sandbox.url}/sandbox/state`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void sandbox.close().then(() => process.exit(0)));
  }
} catch (error) {
  console.error(`Could not start the sandbox: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
