ALTER TABLE "deposit_addresses" ADD COLUMN "tatum_requested_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "virtual_accounts" ADD COLUMN "tatum_create_started_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "virtual_accounts" ADD COLUMN "subscribe_started_at" timestamp with time zone;