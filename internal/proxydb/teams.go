package proxydb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// TeamOp is one membership change of one user.
type TeamOp struct {
	Team string
	// Role is the member's role ("user" or "admin") for an add; ignored for
	// a removal.
	Role   string
	Remove bool
}

// TeamResult is what ApplyTeams did.
type TeamResult struct {
	Added, Removed, RoleChanged []string
	// NotFound are teams that do not exist: never created, nothing written.
	NotFound []string
	// KeysChanged counts the user's keys of removed teams that were blocked
	// or deleted.
	KeysChanged int
}

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

// Memberships returns the teams whose roster (members_with_roles) lists
// the user, with the member's role.
func (d *DB) Memberships(ctx context.Context, rowUserID string) (map[string]string, error) {
	rows, err := d.pool.Query(ctx, `SELECT t.team_id, COALESCE(m->>'role', 'user')
		FROM "LiteLLM_TeamTable" t, jsonb_array_elements(CASE WHEN jsonb_typeof(t.members_with_roles) = 'array' THEN t.members_with_roles ELSE '[]'::jsonb END) m
		WHERE jsonb_typeof(t.members_with_roles) = 'array' AND t.members_with_roles @> jsonb_build_array(jsonb_build_object('user_id', $1::text))
			AND m->>'user_id' = $1`, rowUserID)
	if err != nil {
		return nil, fmt.Errorf("proxydb: team memberships of %s: %w", rowUserID, err)
	}
	out := map[string]string{}
	for rows.Next() {
		var team, role string
		if err := rows.Scan(&team, &role); err != nil {
			return nil, fmt.Errorf("proxydb: team memberships of %s: %w", rowUserID, err)
		}
		out[team] = role
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("proxydb: team memberships of %s: %w", rowUserID, err)
	}
	return out, nil
}

// ApplyTeams makes each change of one user as LiteLLM's /team/member_add
// and /team/member_delete do, one transaction per team (ApplyTeamBatch):
//   - add: the roster entry {user_id, user_email, role} (replacing the
//     user's entry, so a role change is one write), the team appended to the
//     user's teams array when absent, a "LiteLLM_TeamMembership" row when
//     the team gives members a budget (metadata.team_member_budget_id);
//   - remove: the roster entry, the team from the user's teams array, the
//     membership row, and the user's keys of that team: blocked (marked as
//     rolesync's, unblocked when the membership comes back) with keys
//     KeysBlock, else copied to "LiteLLM_DeletedVerificationToken" and
//     deleted, as member_delete does;
//
// each with a "LiteLLM_AuditLog" row. A team that does not exist is never
// created: it is reported in NotFound.
func (d *DB) ApplyTeams(ctx context.Context, rowUserID, email string, ops []TeamOp, keys Keys, reason, object string) (TeamResult, error) {
	var res TeamResult
	for _, op := range ops {
		out, found, err := d.ApplyTeamBatch(ctx, op.Team, []MemberOp{{RowUserID: rowUserID, Email: email, Role: op.Role, Remove: op.Remove,
			Reason: reason, Object: object}}, keys)
		if err != nil {
			return res, fmt.Errorf("proxydb: team %s of %s: %w", op.Team, rowUserID, err)
		}
		if !found {
			res.NotFound = append(res.NotFound, op.Team)
			continue
		}
		res.KeysChanged += out[0].KeysChanged
		switch out[0].Changed {
		case "added":
			res.Added = append(res.Added, op.Team)
		case "removed":
			res.Removed = append(res.Removed, op.Team)
		case "role":
			res.RoleChanged = append(res.RoleChanged, op.Team)
		}
	}
	return res, nil
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
	err = tx.QueryRow(ctx, `SELECT metadata->>'team_member_budget_id' FROM "LiteLLM_TeamTable" WHERE team_id = $1 FOR UPDATE`, team).Scan(&budget)
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
		case op.Remove && !member:
			continue
		case op.Remove && op.DryRun:
			results[i].Changed = "removed"
			continue
		case op.Remove:
			removed = append(removed, op.RowUserID)
			dropped = append(dropped, op.RowUserID)
			results[i].Changed = "removed"
		case member && (e.role == op.Role || (op.KeepHigher && teamRoleRank(e.role) > teamRoleRank(op.Role))):
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
	if budget != nil && *budget != "" {
		steps = append(steps, struct {
			sql  string
			args []any
		}{`INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id, spend, total_spend, budget_id)
			SELECT u, $1, 0, 0, $3 FROM unnest($2::text[]) u ON CONFLICT DO NOTHING`, []any{team, added, *budget}})
	}
	for _, step := range steps {
		if _, err := tx.Exec(ctx, step.sql, step.args...); err != nil {
			return nil, true, err
		}
	}
	keyCounts, err := teamKeys(ctx, tx, team, added, removed, keys)
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
				jsonb_build_object('member', NULLIF(b, '')::jsonb),
				jsonb_build_object('member_' || a, jsonb_build_object('user_id', u, 'role', CASE WHEN a = 'removed' THEN NULL ELSE r END),
					'rolesync', rs, 'keys_changed', kc)
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

// teamRoleRank orders LiteLLM's team roles: admin above user.
func teamRoleRank(role string) int {
	if role == "admin" {
		return 2
	}
	return 1
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// teamKeys handles the keys of team's added and removed members: removed
// members' keys blocked (KeysBlock, marked rolesync_team_blocked) or copied
// to "LiteLLM_DeletedVerificationToken" and deleted, as member_delete does;
// added members' keys that rolesync blocked unblocked (KeysBlock). It
// returns the keys changed per user.
func teamKeys(ctx context.Context, tx pgx.Tx, team string, added, removed []string, keys Keys) (map[string]int, error) {
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
	if len(removed) > 0 && keys == KeysBlock {
		if err := collect(tx.Query(ctx, `UPDATE "LiteLLM_VerificationToken" SET blocked = true,
			metadata = metadata || '{"rolesync_team_blocked": true}'::jsonb, updated_at = `+utcNow+`, updated_by = '`+ChangedBy+`'
			WHERE team_id = $1 AND user_id = ANY($2::text[]) AND blocked IS NOT TRUE RETURNING user_id`, team, removed)); err != nil {
			return nil, err
		}
	} else if len(removed) > 0 {
		if _, err := tx.Exec(ctx, strings.Replace(deleteSteps[0], "WHERE user_id = $1", "WHERE user_id = ANY($1::text[]) AND team_id = $2", 1), removed, team); err != nil {
			return nil, err
		}
		if err := collect(tx.Query(ctx, `DELETE FROM "LiteLLM_VerificationToken" WHERE team_id = $1 AND user_id = ANY($2::text[]) RETURNING user_id`, team, removed)); err != nil {
			return nil, err
		}
	}
	if len(added) > 0 && keys == KeysBlock {
		if _, err := tx.Exec(ctx, `UPDATE "LiteLLM_VerificationToken" SET blocked = metadata ? 'rolesync_blocked', metadata = metadata - 'rolesync_team_blocked',
			updated_at = `+utcNow+`, updated_by = '`+ChangedBy+`' WHERE team_id = $1 AND user_id = ANY($2::text[]) AND metadata ? 'rolesync_team_blocked'`, team, added); err != nil {
			return nil, err
		}
	}
	return counts, nil
}
