package proxydb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// UserTeams returns the user's teams array (LiteLLM keeps it in step with
// the rosters): one row read, whatever the size of the teams.
func (d *DB) UserTeams(ctx context.Context, rowUserID string) ([]string, error) {
	var teams []string
	err := d.pool.QueryRow(ctx, `SELECT COALESCE(teams, '{}') FROM "LiteLLM_UserTable" WHERE user_id = $1`, rowUserID).Scan(&teams)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("proxydb: teams of %s: %w", rowUserID, err)
	}
	return teams, nil
}

// MemberOp is one user's change in one team, for ApplyTeamBatch.
type MemberOp struct {
	RowUserID, Email string
	// Role ("user" or "admin") for an add; ignored for a removal.
	Role   string
	Remove bool
	// KeepHigher leaves a member whose role is above Role as is (an admin
	// raised it; Additive sync never lowers).
	KeepHigher bool
	// DryRun reports what the op would do without doing it (drift left
	// alone under --drift-policy=Report).
	DryRun bool
	// Reason and Object go into the audit row.
	Reason, Object string
}

// MemberResult is what ApplyTeamBatch did (or, DryRun, would do) for one
// MemberOp: "added", "role", "removed" or "" (nothing to do), and the keys
// it changed.
type MemberResult struct {
	Changed     string
	KeysChanged int
}

// rosterEntry is one member of members_with_roles; other fields LiteLLM
// may keep in an entry are preserved.
type rosterEntry struct {
	raw    json.RawMessage
	userID string
	role   string
}

// ApplyTeamBatch applies the changes of many users to one team in one
// transaction under LiteLLM's advisory lock on the team: the roster
// (members_with_roles, one jsonb array per team) is read and written once,
// however many members change, the users' teams arrays, membership rows and
// keys in one statement each, and one audit row per changed member. found
// is false (and nothing is written) when the team does not exist. The ops
// of one user must not repeat within a batch.
func (d *DB) ApplyTeamBatch(ctx context.Context, team string, ops []MemberOp, keys Keys) (results []MemberResult, found bool, err error) {
	defer func(start time.Time) { observe("team_batch", start, err) }(time.Now())
	st, err := d.statements(ctx)
	if err != nil {
		return nil, false, err
	}
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, team); err != nil {
		return nil, false, err
	}
	var budget *string
	var memberModels []string
	// default_team_member_models is read through to_jsonb so a LiteLLM
	// release without the column reads as none.
	err = tx.QueryRow(ctx, `SELECT metadata->>'team_member_budget_id',
		COALESCE(ARRAY(SELECT jsonb_array_elements_text(CASE WHEN jsonb_typeof(to_jsonb(t)->'default_team_member_models') = 'array'
			THEN to_jsonb(t)->'default_team_member_models' ELSE '[]'::jsonb END)), '{}')
		FROM "LiteLLM_TeamTable" t WHERE team_id = $1 FOR UPDATE`, team).Scan(&budget, &memberModels)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	// The entries of the batch's users only: the roster (up to thousands of
	// members) never leaves the database.
	opUsers := make([]string, len(ops))
	for i, op := range ops {
		opUsers[i] = op.RowUserID
	}
	// Users who have the team in their teams array: a removal cleans them
	// even without a roster entry, as LiteLLM's bulk deletion does
	// (bulk_user_deletion._remove_members_from_team).
	inArray := map[string]bool{}
	arr, err := tx.Query(ctx, `SELECT user_id FROM "LiteLLM_UserTable" WHERE user_id = ANY($2::text[]) AND $1 = ANY(teams)`, team, opUsers)
	if err != nil {
		return nil, true, err
	}
	for arr.Next() {
		var u string
		if err := arr.Scan(&u); err != nil {
			arr.Close()
			return nil, true, err
		}
		inArray[u] = true
	}
	arr.Close()
	if err := arr.Err(); err != nil {
		return nil, true, err
	}
	current := make(map[string]rosterEntry, len(ops))
	rows, err := tx.Query(ctx, `SELECT m->>'user_id', COALESCE(m->>'role', ''), m FROM "LiteLLM_TeamTable" t,
		jsonb_array_elements(CASE WHEN jsonb_typeof(t.members_with_roles) = 'array' THEN t.members_with_roles ELSE '[]'::jsonb END) m
		WHERE t.team_id = $1 AND m->>'user_id' = ANY($2::text[])`, team, opUsers)
	if err != nil {
		return nil, true, err
	}
	for rows.Next() {
		var e rosterEntry
		if err := rows.Scan(&e.userID, &e.role, &e.raw); err != nil {
			rows.Close()
			return nil, true, err
		}
		current[e.userID] = e
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, true, err
	}
	results = make([]MemberResult, len(ops))
	// Never nil: pgx sends a nil slice as NULL, and "<> ALL(NULL)" keeps nothing.
	added, removed, dropped := []string{}, []string{}, []string{} // dropped: entries rewritten (removed or role changed)
	var entries []json.RawMessage                                 // appended: added members and changed roles
	var auditUsers, auditActions, auditBefore []string
	for i, op := range ops {
		e, member := current[op.RowUserID]
		var before string
		if member {
			before = string(e.raw)
		}
		switch {
		case op.Remove && !member && !inArray[op.RowUserID]:
			continue
		case op.Remove && op.DryRun:
			results[i].Changed = "removed"
			continue
		case op.Remove:
			removed = append(removed, op.RowUserID)
			dropped = append(dropped, op.RowUserID)
			results[i].Changed = "removed"
		case member && (e.role == op.Role || (op.KeepHigher && rolesyncv1.TeamRole(e.role).Rank() > rolesyncv1.TeamRole(op.Role).Rank())):
			continue
		case op.DryRun && member:
			results[i].Changed = "role"
			continue
		case op.DryRun:
			results[i].Changed = "added"
			continue
		default:
			entry, _ := json.Marshal(map[string]any{"user_id": op.RowUserID, "user_email": nilIfEmpty(op.Email), "role": op.Role})
			entries = append(entries, entry)
			if member {
				dropped = append(dropped, op.RowUserID)
				results[i].Changed = "role"
			} else {
				added = append(added, op.RowUserID)
				results[i].Changed = "added"
			}
		}
		auditUsers = append(auditUsers, op.RowUserID)
		auditActions = append(auditActions, results[i].Changed)
		auditBefore = append(auditBefore, before)
	}
	if len(auditUsers) == 0 {
		return results, true, nil
	}
	if entries == nil {
		entries = []json.RawMessage{}
	}
	newEntries, err := json.Marshal(entries)
	if err != nil {
		return nil, true, err
	}
	now := utcNow
	steps := []struct {
		sql  string
		args []any
	}{
		{`UPDATE "LiteLLM_TeamTable" SET members_with_roles = (CASE WHEN cardinality($4::text[]) = 0
				THEN CASE WHEN jsonb_typeof(members_with_roles) = 'array' THEN members_with_roles ELSE '[]'::jsonb END
				ELSE COALESCE((SELECT jsonb_agg(m) FROM jsonb_array_elements(CASE WHEN jsonb_typeof(members_with_roles) = 'array'
					THEN members_with_roles ELSE '[]'::jsonb END) m WHERE m->>'user_id' <> ALL($4::text[])), '[]'::jsonb) END) || $2::jsonb,
			members = CASE WHEN cardinality($3::text[]) = 0 THEN members ELSE COALESCE((SELECT array_agg(m) FROM unnest(members) m WHERE m <> ALL($3::text[])), '{}') END,
			admins = CASE WHEN cardinality($3::text[]) = 0 THEN admins ELSE COALESCE((SELECT array_agg(a) FROM unnest(admins) a WHERE a <> ALL($3::text[])), '{}') END,
			updated_at = ` + now + ` WHERE team_id = $1`, []any{team, newEntries, removed, dropped}},
		{`UPDATE "LiteLLM_UserTable" SET teams = array_append(COALESCE(teams, '{}'), $1), updated_at = ` + now + `
			WHERE user_id = ANY($2::text[]) AND NOT ($1 = ANY(COALESCE(teams, '{}')))`, []any{team, added}},
		{`UPDATE "LiteLLM_UserTable" SET teams = array_remove(teams, $1), updated_at = ` + now + `
			WHERE user_id = ANY($2::text[]) AND $1 = ANY(teams)`, []any{team, removed}},
		{`DELETE FROM "LiteLLM_TeamMembership" WHERE team_id = $1 AND user_id = ANY($2::text[])`, []any{team, removed}},
	}
	for _, step := range steps {
		if _, err := tx.Exec(ctx, step.sql, step.args...); err != nil {
			return nil, true, err
		}
	}
	defaultBudget := ""
	if budget != nil {
		defaultBudget = *budget
	}
	if err := memberBudgets(ctx, tx, team, added, memberModels, defaultBudget); err != nil {
		return nil, true, err
	}
	reasons := make(map[string]map[string]string, len(ops)) // rolesync's audit values per user
	for _, op := range ops {
		reasons[op.RowUserID] = auditReason(op.Reason, op.Object)
	}
	keyCounts, err := teamKeys(ctx, tx, st, team, added, removed, keys, reasons)
	if err != nil {
		return nil, true, err
	}
	for i, op := range ops {
		results[i].KeysChanged = keyCounts[op.RowUserID]
	}
	if st.audit {
		reasons := make([]map[string]string, len(auditUsers))
		keyChanges := make([]int32, len(auditUsers))
		roles := make([]string, len(auditUsers))
		k := 0
		for i, op := range ops {
			if results[i].Changed == "" {
				continue
			}
			reasons[k], keyChanges[k], roles[k] = auditReason(op.Reason, op.Object), int32(results[i].KeysChanged), op.Role
			k++
		}
		if _, err := tx.Exec(ctx, insertAudit+`
			SELECT gen_random_uuid()::text, `+now+`, '`+ChangedBy+`', '', 'updated', 'LiteLLM_TeamTable', $1,
				`+auditValue(`jsonb_build_object('member', NULLIF(b, '')::jsonb)`)+`,
				`+auditValue(`jsonb_build_object('member_' || a, jsonb_build_object('user_id', u, 'role', CASE WHEN a = 'removed' THEN NULL ELSE r END),
					'rolesync', rs, 'keys_changed', kc)`)+`
			FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::int[]) AS x(u, a, b, r, rs, kc)`,
			team, auditUsers, auditActions, auditBefore, roles, reasons, keyChanges); err != nil {
			return nil, true, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, true, err
	}
	return results, true, nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// teamKeys handles the keys of team's added and removed members: removed
// members' keys of the team blocked for BlockTeamRemoved (KeysBlock) or
// copied to "LiteLLM_DeletedVerificationToken" and deleted, as member_delete
// does; added members' keys get that block lifted whatever the key mode, so
// turning revocation off never strands a key. It returns the keys changed
// per user.
func teamKeys(ctx context.Context, tx pgx.Tx, st *statements, team string, added, removed []string, keys Keys, reasons map[string]map[string]string) (map[string]int, error) {
	counts := map[string]int{}
	collect := func(rows pgx.Rows, err error) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var u string
			if err := rows.Scan(&u); err != nil {
				return err
			}
			counts[u]++
		}
		return rows.Err()
	}
	block := func(users []string, add bool) error {
		stmt := `WITH ` + keyBlockSQL("keys", `k.team_id = $1 AND k.user_id = ANY($2::text[])`, `'`+string(BlockTeamRemoved)+`'`, `$3::boolean`)
		if st.audit {
			stmt += `, ` + keyAuditSQL("audit_keys", "keys", `($4::jsonb)->user_id`)
		} else {
			stmt += `, unused AS (SELECT $4::jsonb)`
		}
		return collect(tx.Query(ctx, stmt+` SELECT user_id FROM keys WHERE blocked IS DISTINCT FROM was_blocked`, team, users, add, reasons))
	}
	switch {
	case len(removed) > 0 && keys == KeysBlock:
		if err := block(removed, true); err != nil {
			return nil, err
		}
	case len(removed) > 0:
		if st.copyErr != nil {
			return nil, st.copyErr
		}
		if _, err := tx.Exec(ctx, st.copyKeys+` WHERE user_id = ANY($1::text[]) AND team_id = $2`, removed, team); err != nil {
			return nil, err
		}
		if err := collect(tx.Query(ctx, `DELETE FROM "LiteLLM_VerificationToken" WHERE team_id = $1 AND user_id = ANY($2::text[]) RETURNING user_id`, team, removed)); err != nil {
			return nil, err
		}
	}
	if len(added) > 0 {
		if err := block(added, false); err != nil {
			return nil, err
		}
	}
	return counts, nil
}

// memberBudgets gives each added member a "LiteLLM_TeamMembership" row with
// a budget of its own, as LiteLLM's member add does (team_roster_sync,
// management_helpers/utils.py _resolve_member_budget_id with allowed_models =
// the team's default_team_member_models or None):
//   - the team has default_team_member_models: a fresh budget whose
//     allowed_models are those models (the member reaches only them, not
//     every team model);
//   - else the team has a default member budget
//     (metadata.team_member_budget_id) that exists: a clone of it
//     (_clone_team_default_budget_for_member: its limits, duration and
//     allowed_models; a reset window starting now);
//   - else no membership row (LiteLLM writes none without a budget).
func memberBudgets(ctx context.Context, tx pgx.Tx, team string, added, models []string, defaultBudget string) error {
	if len(added) == 0 || (len(models) == 0 && defaultBudget == "") {
		return nil
	}
	now := utcNow
	if len(models) > 0 {
		_, err := tx.Exec(ctx, `WITH ids AS MATERIALIZED (SELECT u, gen_random_uuid()::text AS bid FROM unnest($2::text[]) u),
			b AS (INSERT INTO "LiteLLM_BudgetTable" (budget_id, allowed_models, created_at, created_by, updated_at, updated_by)
				SELECT bid, $3::text[], `+now+`, '`+ChangedBy+`', `+now+`, '`+ChangedBy+`' FROM ids)
			INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id, spend, total_spend, budget_id)
			SELECT u, $1, 0, 0, bid FROM ids ON CONFLICT DO NOTHING`, team, added, models)
		return err
	}
	var duration *string
	err := tx.QueryRow(ctx, `SELECT budget_duration FROM "LiteLLM_BudgetTable" WHERE budget_id = $1`, defaultBudget).Scan(&duration)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // the default budget is gone: LiteLLM links no budget, so no membership row
	}
	if err != nil {
		return err
	}
	var resetAt *time.Time
	if duration != nil && *duration != "" {
		if d, ok := budgetWindow(*duration); ok {
			at := time.Now().UTC().Add(d)
			resetAt = &at
		}
	}
	_, err = tx.Exec(ctx, `WITH ids AS MATERIALIZED (SELECT u, gen_random_uuid()::text AS bid FROM unnest($2::text[]) u),
		b AS (INSERT INTO "LiteLLM_BudgetTable" (budget_id, max_budget, soft_budget, max_parallel_requests, tpm_limit, rpm_limit,
				model_max_budget, budget_duration, allowed_models, budget_reset_at, created_at, created_by, updated_at, updated_by)
			SELECT ids.bid, d.max_budget, d.soft_budget, d.max_parallel_requests, d.tpm_limit, d.rpm_limit,
				d.model_max_budget, d.budget_duration, COALESCE(d.allowed_models, '{}'), $4::timestamp,
				`+now+`, '`+ChangedBy+`', `+now+`, '`+ChangedBy+`'
			FROM ids, "LiteLLM_BudgetTable" d WHERE d.budget_id = $3)
		INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id, spend, total_spend, budget_id)
		SELECT u, $1, 0, 0, bid FROM ids ON CONFLICT DO NOTHING`, team, added, defaultBudget, resetAt)
	return err
}

// budgetWindow parses a LiteLLM budget duration ("30s", "10m", "24h", "7d",
// "1w", "1mo"), as litellm_core_utils/duration_parser.duration_in_seconds
// does. A cloned member budget's window starts now; LiteLLM snaps it to a
// boundary in its configured timezone, which its budget reset job does at
// the first reset.
func budgetWindow(s string) (time.Duration, bool) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"mo", 30 * 24 * time.Hour}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v <= 0 {
				return 0, false
			}
			return time.Duration(v) * u.unit, true
		}
	}
	return 0, false
}
