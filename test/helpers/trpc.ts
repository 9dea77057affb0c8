// A typed tRPC client for tests, exactly as a frontend would build one.
import { createTRPCClient, httpLink } from '@trpc/client';
import superjson from 'superjson';
import type { AppRouter } from '../../server/routers/index.ts';

export function trpcClient(baseUrl: string, bearerToken?: string) {
  return createTRPCClient<AppRouter>({
    links: [
      httpLink({
        url: `${baseUrl}/trpc`,
        transformer: superjson,
        headers: () => (bearerToken ? { authorization: `Bearer ${bearerToken}` } : {}),
      }),
    ],
  });
}
