// Sign-up by email code. Errors a client can get (besides zod's 400 for malformed input):
//   verify: UNAUTHORIZED wrong code (or unknown address), BAD_REQUEST expired code,
//           TOO_MANY_REQUESTS after MAX_ATTEMPTS wrong guesses (even with the right code).
//   sandboxMailbox: NOT_FOUND in live mode (it does not exist there), NOT_FOUND when nothing was sent.
import { TRPCError } from '@trpc/server';
import { z } from 'zod';
import { emailSchema } from '../auth/email.ts';
import { lastCodeSentTo } from '../auth/mailbox.ts';
import { register } from '../auth/register.ts';
import { verify } from '../auth/verify.ts';
import { adminProcedure, publicProcedure, router, userProcedure } from '../trpc.ts';

const emailInput = z.object({ email: emailSchema }).strict();

export const authRouter = router({
  /** Creates the user, or issues a fresh code to an unverified one; the answer is the same for a verified address. */
  register: publicProcedure.input(emailInput).mutation(({ ctx, input }) => register(ctx, input.email)),

  /** Checks the code; the session token in the answer is shown once. */
  verify: publicProcedure
    .input(z.object({ email: emailSchema, code: z.string().trim().regex(/^\d{6}$/, 'must be the 6-digit code') }).strict())
    .mutation(({ ctx, input }) => verify(ctx, input)),

  /** Who the session belongs to. */
  me: userProcedure.query(({ ctx }) => ctx.user),

  /** Sandbox only: the last code mailed to an address, as a developer would read it in their inbox. */
  sandboxMailbox: publicProcedure
    .use(({ ctx, next }) => {
      if (ctx.config.mode !== 'sandbox') throw new TRPCError({ code: 'NOT_FOUND', message: 'No such procedure in live mode.' });
      return next();
    })
    .unstable_concat(adminProcedure)
    .input(emailInput)
    .query(async ({ ctx, input }) => {
      const code = await lastCodeSentTo(ctx, input.email);
      if (code === undefined) throw new TRPCError({ code: 'NOT_FOUND', message: `No code was sent to ${input.email}.` });
      return { email: input.email, code };
    }),
});
