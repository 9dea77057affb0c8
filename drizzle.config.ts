import { defineConfig } from 'drizzle-kit';

// `npm run db:generate` writes a new migration under db/migrations from the schema diff. It needs no
// database; `npm run db:migrate` (and every process at start) applies what is committed.
export default defineConfig({
  dialect: 'postgresql',
  schema: './db/schema.ts',
  out: './db/migrations',
});
