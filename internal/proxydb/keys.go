package proxydb

import "strings"

// Virtual keys ("LiteLLM_VerificationToken") and their blocked column.
//
// keyBlockSQL is the one writer of blocked in rolesync: a role denied, a team
// left and (later) a deprovisioned user all block a key through it, each as
// a reason recorded in the key's metadata (rolesync_blocked_by, a JSON list)
// and lifted alone. The rule that combines them:
//
//   - adding a reason blocks the key; a key that was already blocked by
//     someone else (an admin; no reason of rolesync's recorded) gets the
//     reason "external" too, so it stays blocked when rolesync's reasons go;
//   - lifting a reason unblocks the key only when no reason is left and
//     LiteLLM's SCIM does not hold it (metadata.scim_blocked = true, which
//     only LiteLLM's SCIM reactivation lifts); lifting never blocks a key
//     (an admin who unblocked a key rolesync blocked keeps it unblocked, and
//     "external" is dropped from a key found unblocked);
//   - a key whose recorded reasons do not change is not written.
//
// The markers of earlier releases (metadata.rolesync_blocked for the role,
// rolesync_team_blocked for a team) are read as the reasons role and team
// and replaced by the list on the key's next write.

// BlockReason is why rolesync holds a virtual key blocked.
type BlockReason string

const (
	// BlockRoleDenied means the user is denied a role (or was deleted with
	// deletionPolicy Downgrade) under --key-revocation=Block; every key of
	// the user.
	BlockRoleDenied BlockReason = "role"
	// BlockTeamRemoved means the user left the key's team (teamSync Exact) under
	// --key-revocation=Block; the user's keys of that team.
	BlockTeamRemoved BlockReason = "team"
	// BlockDeprovisioned means the identity provider's directory deprovisioned
	// the user; every key of the user.
	BlockDeprovisioned BlockReason = "deprovisioned"
)

// The reason "external" (in keyBlockSQL) records that someone else blocked
// the key before rolesync's first reason.

// blockedByKey is the metadata key holding a key's reasons.
const blockedByKey = "rolesync_blocked_by"

// keyBlockSQL returns the common table expressions name_sel, name_calc and name
// that add (when the SQL boolean add is true) or lift the reason (an SQL
// text expression) on the keys "LiteLLM_VerificationToken" k selected by
// where. name returns (token, user_id, was_blocked, blocked) for every key
// it wrote (a key whose reasons changed; blocked may be unchanged). They lock the keys in token order, so concurrent writers of one
// user's keys (a role write and a team batch) queue instead of deadlocking.
func keyBlockSQL(name, where, reason, add string) string {
	r := "(" + reason + ")::text"
	return strings.NewReplacer("{name}", name, "{where}", where, "{reason}", r, "{add}", "("+add+")", "{now}", utcNow, "{by}", ChangedBy, "{meta}", blockedByKey).Replace(`{name}_sel AS (
	SELECT k.token, k.blocked IS TRUE AS was_blocked, COALESCE(k.metadata->>'scim_blocked', '') = 'true' AS scim,
		k.metadata ? 'rolesync_blocked' OR k.metadata ? 'rolesync_team_blocked' AS legacy,
		CASE WHEN jsonb_typeof(k.metadata->'{meta}') = 'array' THEN k.metadata->'{meta}' ELSE '[]'::jsonb END
			|| CASE WHEN k.metadata ? 'rolesync_blocked' THEN '["role"]'::jsonb ELSE '[]'::jsonb END
			|| CASE WHEN k.metadata ? 'rolesync_team_blocked' THEN '["team"]'::jsonb ELSE '[]'::jsonb END AS had
	FROM "LiteLLM_VerificationToken" k WHERE {where}
	ORDER BY k.token FOR UPDATE OF k
), {name}_calc AS (
	SELECT token, was_blocked, scim, CASE WHEN {add}
		THEN (had - {reason} - 'external') || to_jsonb({reason})
			|| CASE WHEN was_blocked AND NOT scim AND (had ? 'external' OR had = '[]'::jsonb) THEN '["external"]'::jsonb ELSE '[]'::jsonb END
		ELSE CASE WHEN was_blocked THEN had - {reason} ELSE had - {reason} - 'external' END
	END AS now
	FROM {name}_sel WHERE legacy OR {add} <> (had ? {reason})
), {name} AS (
	UPDATE "LiteLLM_VerificationToken" k SET
		blocked = CASE WHEN {add} THEN true ELSE c.was_blocked AND (jsonb_array_length(c.now) > 0 OR c.scim) END,
		metadata = (CASE WHEN jsonb_array_length(c.now) = 0 THEN k.metadata - '{meta}'
			ELSE k.metadata || jsonb_build_object('{meta}', c.now) END) - 'rolesync_blocked' - 'rolesync_team_blocked',
		updated_at = {now}, updated_by = '{by}'
	FROM {name}_calc c WHERE k.token = c.token
	RETURNING k.token, k.user_id, c.was_blocked, k.blocked
)`)
}

// keyAuditSQL returns a common table expression writing one
// "LiteLLM_AuditLog" row per key whose blocked the CTE keys changed, in
// LiteLLM's action vocabulary ("blocked", or "updated" for an unblock).
// audit is the SQL jsonb expression of rolesync's values.
func keyAuditSQL(name, keys, audit string) string {
	return name + ` AS (
	` + insertAudit + `
	SELECT gen_random_uuid()::text, ` + utcNow + `, '` + ChangedBy + `', '', CASE WHEN blocked AND NOT was_blocked THEN 'blocked' ELSE 'updated' END,
		'LiteLLM_VerificationToken', token,
		jsonb_build_object('blocked', was_blocked), jsonb_build_object('blocked', blocked, 'rolesync', ` + audit + `)
	FROM ` + keys + ` WHERE blocked IS DISTINCT FROM was_blocked
)`
}

// copyKeysToDeletedSQL copies the keys selected by where (on
// "LiteLLM_VerificationToken") into "LiteLLM_DeletedVerificationToken", as
// LiteLLM does before it deletes keys.
func copyKeysToDeletedSQL(where string) string {
	return `INSERT INTO "LiteLLM_DeletedVerificationToken" (id, token, key_name, key_alias, spend, expires, models, aliases, config,
		user_id, team_id, permissions, max_parallel_requests, metadata, blocked, tpm_limit, rpm_limit, max_budget,
		budget_duration, budget_reset_at, model_spend, model_max_budget, budget_id, organization_id,
		created_at, created_by, updated_at, updated_by, deleted_at, deleted_by)
	SELECT gen_random_uuid()::text, token, key_name, key_alias, spend, expires, models, aliases, config,
		user_id, team_id, permissions, max_parallel_requests, metadata, blocked, tpm_limit, rpm_limit, max_budget,
		budget_duration, budget_reset_at, model_spend, model_max_budget, budget_id, organization_id,
		created_at, created_by, updated_at, updated_by, ` + utcNow + `, '` + ChangedBy + `'
	FROM "LiteLLM_VerificationToken" WHERE ` + where
}
