package pgtest

// LiteLLMUserTableDDL creates LiteLLM's user table with the columns the
// operator touches or must fill (see docs/operations.md), as LiteLLM's Prisma
// schema declares them.
const LiteLLMUserTableDDL = `
CREATE TABLE IF NOT EXISTS "LiteLLM_UserTable" (
	user_id                text PRIMARY KEY,
	user_alias             text,
	sso_user_id            text UNIQUE,
	user_email             text,
	user_role              text,
	teams                  text[] NOT NULL DEFAULT '{}',
	models                 text[] NOT NULL DEFAULT '{}',
	metadata               jsonb NOT NULL DEFAULT '{}',
	spend                  double precision NOT NULL DEFAULT 0,
	model_spend            jsonb DEFAULT '{}',
	model_max_budget       jsonb DEFAULT '{}',
	allowed_cache_controls text[] DEFAULT '{}',
	policies               text[] DEFAULT '{}',
	max_budget             double precision,
	created_at             timestamp(3) DEFAULT now(),
	updated_at             timestamp(3) DEFAULT now()
)`
