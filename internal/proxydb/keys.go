package proxydb

import (
	"errors"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

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
	return keyBlockLiftSQL(name, where, reason, add, "ARRAY["+reason+"]")
}

// keyBlockLiftSQL is keyBlockSQL where lifting (add false) lifts every
// reason of lift (an SQL text[] expression) at once.
func keyBlockLiftSQL(name, where, reason, add, lift string) string {
	r := "(" + reason + ")::text"
	return strings.NewReplacer("{name}", name, "{where}", where, "{reason}", r, "{lift}", "("+lift+")::text[]", "{add}", "("+add+")", "{now}", utcNow, "{by}", ChangedBy, "{meta}", blockedByKey).Replace(`{name}_sel AS (
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
		ELSE CASE WHEN was_blocked THEN had - {lift} ELSE had - {lift} - 'external' END
	END AS now
	FROM {name}_sel WHERE legacy OR CASE WHEN {add} THEN NOT (had ? {reason}) ELSE had ?| {lift} END
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
		` + auditValue(`jsonb_build_object('blocked', was_blocked)`) + `, ` + auditValue(`jsonb_build_object('blocked', blocked, 'rolesync', `+audit+`)`) + `
	FROM ` + keys + ` WHERE blocked IS DISTINCT FROM was_blocked
)`
}

// keyCopyOwnColumns are the columns of "LiteLLM_DeletedVerificationToken"
// the copy fills itself; every other column both key tables have is copied
// from the key.
var keyCopyOwnColumns = []string{"id", "deleted_at", "deleted_by", "deleted_by_api_key", "litellm_changed_by"}

// buildKeyCopy returns the INSERT ... SELECT (without WHERE) that copies
// keys into "LiteLLM_DeletedVerificationToken" as LiteLLM's own key deletion
// does (key_management_endpoints.py, _transform_verification_tokens_to_deleted_records:
// every column of the key, then deleted_at, deleted_by and
// litellm_changed_by): every column the two tables share, whatever LiteLLM
// release added it, so a copy never drops one. keyCols and deletedCols are
// the tables' columns as the database has them.
func buildKeyCopy(keyCols, deletedCols []string) (string, error) {
	if len(keyCols) == 0 || len(deletedCols) == 0 {
		return "", errors.New(`LiteLLM's "LiteLLM_VerificationToken" or "LiteLLM_DeletedVerificationToken" table is missing: not a LiteLLM database (or its migrations did not run); no key is deleted`)
	}
	var shared []string
	for _, c := range keyCols {
		if slices.Contains(deletedCols, c) && !slices.Contains(keyCopyOwnColumns, c) {
			shared = append(shared, pgx.Identifier{c}.Sanitize())
		}
	}
	if !slices.Contains(shared, `"token"`) || !slices.Contains(deletedCols, "id") || !slices.Contains(deletedCols, "deleted_at") {
		return "", errors.New(`"LiteLLM_DeletedVerificationToken" lacks id, token or deleted_at: not LiteLLM's table; no key is deleted`)
	}
	into := append([]string{`"id"`}, shared...)
	from := append([]string{`gen_random_uuid()::text`}, shared...)
	into, from = append(into, `"deleted_at"`), append(from, utcNow)
	for _, c := range []string{"deleted_by", "litellm_changed_by"} {
		if slices.Contains(deletedCols, c) {
			into, from = append(into, pgx.Identifier{c}.Sanitize()), append(from, `'`+ChangedBy+`'`)
		}
	}
	return `INSERT INTO "LiteLLM_DeletedVerificationToken" (` + strings.Join(into, ", ") + `)
	SELECT ` + strings.Join(from, ", ") + ` FROM "LiteLLM_VerificationToken"`, nil
}
