// The Tatum sandbox for tests: a real HTTP server on a free port, a client pointed at it, xpubs of a
// fixed test mnemonic, over-HTTP access to the sandbox-only routes, and a webhook receiver.
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CHAINS, type Chain } from '../../jobs/config.ts';
import { accountXpub } from '../../jobs/custody/hd.ts';
import { TatumClient, type TatumClientOptions } from '../../jobs/tatum/client.ts';
import { startSandbox, type Sandbox, type SandboxCounters, type SandboxOptions, type SandboxState } from '../../jobs/tatum/sandbox/server.ts';

/** The BIP-39 test mnemonic: public, so its keys hold nothing. */
export const TEST_MNEMONIC = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';

export const TEST_XPUBS: Readonly<Record<Chain, string>> = Object.fromEntries(
  CHAINS.map((chain) => [chain, accountXpub(chain, TEST_MNEMONIC)]),
) as Record<Chain, string>;

export interface TestSandbox extends Sandbox {
  /** A client for this sandbox; fast retries unless overridden. */
  client(overrides?: Partial<TatumClientOptions>): TatumClient;
  /** The sandbox-only routes, over real HTTP. */
  http: {
    counters(): Promise<SandboxCounters>;
    state(): Promise<SandboxState>;
    configure(patch: Record<string, unknown>): Promise<Response>;
    deposit(input: Record<string, unknown>): Promise<Response>;
  };
}

export async function startTestSandbox(options: SandboxOptions = {}): Promise<TestSandbox> {
  const sandbox = await startSandbox({ port: 0, ...options });
  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${sandbox.url}${path}`, {
      method,
      headers: { 'x-api-key': sandbox.apiKey, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const json = async <T>(response: Promise<Response>): Promise<T> => {
    const res = await response;
    if (!res.ok) throw new Error(`sandbox answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as T;
  };
  return {
    ...sandbox,
    client: (overrides = {}) =>
      new TatumClient({
        baseUrl: sandbox.url,
        apiKey: sandbox.apiKey,
        timeoutMs: 2000,
        retry: { attempts: 4, baseDelayMs: 20, maxDelayMs: 2000 },
        ...overrides,
      }),
    http: {
      counters: () => json(call('GET', '/sandbox/counters')),
      state: () => json(call('GET', '/sandbox/state')),
      configure: (patch) => call('POST', '/sandbox/config', patch),
      deposit: (input) => call('POST', '/sandbox/deposits', input),
    },
  };
}

export interface ReceivedWebhook {
  headers: IncomingHttpHeaders;
  /** The exact bytes received. */
  body: Buffer;
}

export interface WebhookReceiver {
  url: string;
  received: ReceivedWebhook[];
  /** Resolves once `count` webhooks have arrived (rejects after `timeoutMs`). */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedWebhook[]>;
  close(): Promise<void>;
}

/** A local HTTP endpoint that records webhooks; `status(n)` is the answer to the n-th (0-based). */
export async function startWebhookReceiver(status: (n: number) => number = () => 200): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const n = received.length;
      received.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(status(n)).end();
      for (const waiter of waiters.filter((w) => received.length >= w.count)) waiter.resolve();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook`,
    received,
    waitFor(count, timeoutMs = 10_000) {
      if (received.length >= count) return Promise.resolve(received);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${received.length} of ${count} webhooks within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve(received);
          },
        });
      });
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
