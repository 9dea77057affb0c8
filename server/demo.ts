// `npm run demo`: against a running `npm start` (sandbox mode), a typed tRPC client registers a user,
// reads the code from the sandbox mailbox (as a developer would from the log), verifies, waits for
// provisioning and prints the deposit addresses.
import { createTRPCClient, httpLink } from '@trpc/client';
import superjson from 'superjson';
import type { AppRouter } from './routers/index.ts';

const baseUrl = process.argv[2] ?? 'http://127.0.0.1:3000';
const client = (sessionToken?: string) =>
  createTRPCClient<AppRouter>({
    links: [
      httpLink({
        url: `${baseUrl}/trpc`,
        transformer: superjson,
        headers: () => (sessionToken ? { authorization: `Bearer ${sessionToken}` } : {}),
      }),
    ],
  });

const anonymous = client();
const info = await anonymous.system.info.query();
if (info.mode !== 'sandbox') throw new Error('the demo reads codes from the sandbox mailbox: run it against a sandbox-mode server');

const email = `demo-${Date.now()}@example.com`;
const { userId } = await anonymous.auth.register.mutate({ email });
console.log(`registered ${email} (user ${userId})`);

const code = await waitFor('the verification email', async () => (await anonymous.auth.sandboxMailbox.query({ email })).code);
const { sessionToken, jobId } = await anonymous.auth.verify.mutate({ email, code });
console.log(`verified; provisioning job ${jobId}`);

const user = client(sessionToken);
const started = Date.now();
const accounts = await waitFor('provisioning', async () => {
  const list = await user.wallet.accounts.query();
  const failed = list.find((a) => a.status === 'failed');
  if (failed) throw new Error(`${failed.currency} failed: ${failed.error}`);
  return list.length > 0 && list.every((a) => a.status === 'ready') ? list : undefined;
});
console.log(`all ${accounts.length} currencies ready in ${Date.now() - started} ms\n`);
console.table(accounts.map(({ currency, chain, address, tatumAccountId }) => ({ currency, chain, address, tatumAccountId })));

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch((err: unknown) => {
      if ((err as { data?: { code?: string } }).data?.code === 'NOT_FOUND') return undefined;
      throw err;
    });
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
