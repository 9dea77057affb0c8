CREATE TYPE "public"."account_status" AS ENUM('pending', 'ready', 'failed');--> statement-breakpoint
CREATE TYPE "public"."chain" AS ENUM('bitcoin', 'ethereum', 'tron', 'bsc', 'litecoin');--> statement-breakpoint
CREATE TYPE "public"."currency_kind" AS ENUM('native', 'token');--> statement-breakpoint
CREATE TABLE "deposit_addresses" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" uuid NOT NULL,
	"chain" "chain" NOT NULL,
	"derivation_index" integer NOT NULL,
	"address" text,
	"private_key_encrypted" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "deposit_addresses_user_chain_unique" UNIQUE("user_id","chain"),
	CONSTRAINT "deposit_addresses_chain_index_unique" UNIQUE("chain","derivation_index"),
	CONSTRAINT "deposit_addresses_chain_address_unique" UNIQUE("chain","address"),
	CONSTRAINT "deposit_addresses_index_positive" CHECK ("deposit_addresses"."derivation_index" >= 1),
	CONSTRAINT "deposit_addresses_address_with_key" CHECK (("deposit_addresses"."address" is null) = ("deposit_addresses"."private_key_encrypted" is null))
);
--> statement-breakpoint
CREATE TABLE "deposits" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"reference" text NOT NULL,
	"virtual_account_id" uuid NOT NULL,
	"currency" text NOT NULL,
	"amount" numeric(78, 36) NOT NULL,
	"tx_id" text NOT NULL,
	"block_height" integer,
	"from_address" text,
	"to_address" text,
	"output_index" integer,
	"status" text DEFAULT 'pending' NOT NULL,
	"payload" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "deposits_reference_unique" UNIQUE("reference"),
	CONSTRAINT "deposits_amount_positive" CHECK ("deposits"."amount" > 0)
);
--> statement-breakpoint
CREATE TABLE "master_wallets" (
	"chain" "chain" PRIMARY KEY NOT NULL,
	"xpub" text NOT NULL,
	"mnemonic_encrypted" text NOT NULL,
	"next_index" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "master_wallets_xpub_unique" UNIQUE("xpub"),
	CONSTRAINT "master_wallets_next_index" CHECK ("master_wallets"."next_index" >= 1)
);
--> statement-breakpoint
CREATE TABLE "rate_limits" (
	"name" text PRIMARY KEY NOT NULL,
	"next_slot_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "sessions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" uuid NOT NULL,
	"token_hash" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "sessions_token_hash_unique" UNIQUE("token_hash")
);
--> statement-breakpoint
CREATE TABLE "users" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"email" text NOT NULL,
	"email_verified_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "users_email_unique" UNIQUE("email"),
	CONSTRAINT "users_email_lower" CHECK ("users"."email" = lower("users"."email")),
	CONSTRAINT "users_email_length" CHECK (length("users"."email") between 3 and 254)
);
--> statement-breakpoint
CREATE TABLE "verification_codes" (
	"user_id" uuid PRIMARY KEY NOT NULL,
	"code_hash" text NOT NULL,
	"attempts" smallint DEFAULT 0 NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "verification_codes_attempts" CHECK ("verification_codes"."attempts" >= 0)
);
--> statement-breakpoint
CREATE TABLE "virtual_accounts" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" uuid NOT NULL,
	"currency" text NOT NULL,
	"account_number" text NOT NULL,
	"tatum_account_id" text,
	"deposit_address_id" uuid,
	"address_assigned_at" timestamp with time zone,
	"status" "account_status" DEFAULT 'pending' NOT NULL,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "virtual_accounts_account_number_unique" UNIQUE("account_number"),
	CONSTRAINT "virtual_accounts_tatum_account_id_unique" UNIQUE("tatum_account_id"),
	CONSTRAINT "virtual_accounts_user_currency_unique" UNIQUE("user_id","currency"),
	CONSTRAINT "virtual_accounts_ready_complete" CHECK ("virtual_accounts"."status" <> 'ready' or ("virtual_accounts"."tatum_account_id" is not null and "virtual_accounts"."address_assigned_at" is not null))
);
--> statement-breakpoint
CREATE TABLE "wallet_currencies" (
	"code" text PRIMARY KEY NOT NULL,
	"chain" "chain" NOT NULL,
	"kind" "currency_kind" NOT NULL,
	"contract_address" text,
	"decimals" smallint NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	CONSTRAINT "wallet_currencies_contract" CHECK (("wallet_currencies"."kind" = 'token') = ("wallet_currencies"."contract_address" is not null)),
	CONSTRAINT "wallet_currencies_decimals" CHECK ("wallet_currencies"."decimals" between 0 and 36)
);
--> statement-breakpoint
CREATE TABLE "webhook_subscriptions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"virtual_account_id" uuid NOT NULL,
	"tatum_subscription_id" text NOT NULL,
	"url" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "webhook_subscriptions_account_unique" UNIQUE("virtual_account_id"),
	CONSTRAINT "webhook_subscriptions_tatum_id_unique" UNIQUE("tatum_subscription_id")
);
--> statement-breakpoint
ALTER TABLE "deposit_addresses" ADD CONSTRAINT "deposit_addresses_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "deposits" ADD CONSTRAINT "deposits_virtual_account_id_virtual_accounts_id_fk" FOREIGN KEY ("virtual_account_id") REFERENCES "public"."virtual_accounts"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sessions" ADD CONSTRAINT "sessions_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "verification_codes" ADD CONSTRAINT "verification_codes_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "virtual_accounts" ADD CONSTRAINT "virtual_accounts_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "virtual_accounts" ADD CONSTRAINT "virtual_accounts_currency_wallet_currencies_code_fk" FOREIGN KEY ("currency") REFERENCES "public"."wallet_currencies"("code") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "virtual_accounts" ADD CONSTRAINT "virtual_accounts_deposit_address_id_deposit_addresses_id_fk" FOREIGN KEY ("deposit_address_id") REFERENCES "public"."deposit_addresses"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_subscriptions" ADD CONSTRAINT "webhook_subscriptions_virtual_account_id_virtual_accounts_id_fk" FOREIGN KEY ("virtual_account_id") REFERENCES "public"."virtual_accounts"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "deposits_account_created_idx" ON "deposits" USING btree ("virtual_account_id","created_at");--> statement-breakpoint
CREATE INDEX "sessions_user_idx" ON "sessions" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "virtual_accounts_status_idx" ON "virtual_accounts" USING btree ("status");