package proxydb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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

// ApplyTeams makes each change as LiteLLM's /team/member_add and
// /team/member_delete do, one transaction per team under LiteLLM's
// advisory lock on the team (pg_advisory_xact_lock(hashtext(team_id))):
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
	st, err := d.statements(ctx)
	if err != nil {
		return res, fmt.Errorf("proxydb: teams of %s: %w", rowUserID, err)
	}
	for _, op := range ops {
		changed, keysChanged, found, err := d.applyTeam(ctx, st.audit, rowUserID, email, op, keys, reason, object)
		if err != nil {
			return res, fmt.Errorf("proxydb: team %s of %s: %w", op.Team, rowUserID, err)
		}
		res.KeysChanged += keysChanged
		switch {
		case !found:
			res.NotFound = append(res.NotFound, op.Team)
		case changed == "added":
			res.Added = append(res.Added, op.Team)
		case changed == "removed":
			res.Removed = append(res.Removed, op.Team)
		case changed == "role":
			res.RoleChanged = append(res.RoleChanged, op.Team)
		}
	}
	return res, nil
}

// rosterWithout is the roster of team $1 without user $2.
const rosterWithout = `COALESCE((SELECT jsonb_agg(m) FROM jsonb_array_elements(CASE WHEN jsonb_typeof(members_with_roles) = 'array'
	THEN members_with_roles ELSE '[]'::jsonb END) m WHERE m->>'user_id' IS DISTINCT FROM $2::text), '[]'::jsonb)`

func (d *DB) applyTeam(ctx context.Context, audit bool, rowUserID, email string, op TeamOp, keys Keys, reason, object string) (changed string, keysChanged int, found bool, err error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return "", 0, false, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, op.Team); err != nil {
		return "", 0, false, err
	}
	var entry []byte // the user's roster entry now (nil: not a member)
	var budget *string
	err = tx.QueryRow(ctx, `SELECT (SELECT m FROM jsonb_array_elements(CASE WHEN jsonb_typeof(members_with_roles) = 'array'
			THEN members_with_roles ELSE '[]'::jsonb END) m WHERE m->>'user_id' = $2 LIMIT 1),
		metadata->>'team_member_budget_id'
		FROM "LiteLLM_TeamTable" WHERE team_id = $1 FOR UPDATE`, op.Team, rowUserID).Scan(&entry, &budget)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, true, err
	}
	var currentRole *string
	if entry != nil {
		var m struct {
			Role string `json:"role"`
		}
		if err := json.Unmarshal(entry, &m); err != nil {
			return "", 0, true, err
		}
		currentRole = &m.Role
	}
	now := utcNow
	switch {
	case op.Remove && entry == nil:
		return "", 0, true, nil
	case op.Remove:
		if _, err := tx.Exec(ctx, `UPDATE "LiteLLM_TeamTable" SET members_with_roles = `+rosterWithout+`,
			members = array_remove(members, $2), admins = array_remove(admins, $2), updated_at = `+now+` WHERE team_id = $1`, op.Team, rowUserID); err != nil {
			return "", 0, true, err
		}
		if _, err := tx.Exec(ctx, `UPDATE "LiteLLM_UserTable" SET teams = array_remove(teams, $1), updated_at = `+now+`
			WHERE user_id = $2 AND $1 = ANY(teams)`, op.Team, rowUserID); err != nil {
			return "", 0, true, err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM "LiteLLM_TeamMembership" WHERE user_id = $2 AND team_id = $1`, op.Team, rowUserID); err != nil {
			return "", 0, true, err
		}
		if keysChanged, err = revokeTeamKeys(ctx, tx, op.Team, rowUserID, keys); err != nil {
			return "", 0, true, err
		}
		changed = "removed"
	case currentRole != nil && *currentRole == op.Role:
		return "", 0, true, nil // already a member with that role
	default:
		if _, err := tx.Exec(ctx, `UPDATE "LiteLLM_TeamTable" SET members_with_roles = `+rosterWithout+` ||
			jsonb_build_array(jsonb_build_object('user_id', $2::text, 'user_email', NULLIF($3::text, ''), 'role', $4::text)),
			updated_at = `+now+` WHERE team_id = $1`, op.Team, rowUserID, email, op.Role); err != nil {
			return "", 0, true, err
		}
		if _, err := tx.Exec(ctx, `UPDATE "LiteLLM_UserTable" SET teams = array_append(COALESCE(teams, '{}'), $1), updated_at = `+now+`
			WHERE user_id = $2 AND NOT ($1 = ANY(COALESCE(teams, '{}')))`, op.Team, rowUserID); err != nil {
			return "", 0, true, err
		}
		if budget != nil && *budget != "" {
			if _, err := tx.Exec(ctx, `INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id, spend, total_spend, budget_id)
				VALUES ($2, $1, 0, 0, $3) ON CONFLICT DO NOTHING`, op.Team, rowUserID, *budget); err != nil {
				return "", 0, true, err
			}
		}
		if keys == KeysBlock { // keys blocked when an earlier removal blocked them come back
			if _, err := tx.Exec(ctx, `UPDATE "LiteLLM_VerificationToken" SET blocked = false, metadata = metadata - 'rolesync_team_blocked',
				updated_at = `+now+`, updated_by = '`+ChangedBy+`' WHERE user_id = $2 AND team_id = $1 AND metadata ? 'rolesync_team_blocked'`, op.Team, rowUserID); err != nil {
				return "", 0, true, err
			}
		}
		changed = "added"
		if entry != nil {
			changed = "role"
		}
	}
	if audit {
		after := map[string]any{"member_" + changed: map[string]string{"user_id": rowUserID, "role": op.Role}, "rolesync": auditReason(reason, object), "keys_changed": keysChanged}
		if op.Remove {
			after = map[string]any{"member_removed": map[string]string{"user_id": rowUserID}, "rolesync": auditReason(reason, object), "keys_changed": keysChanged}
		}
		if _, err := tx.Exec(ctx, insertAudit+` VALUES (gen_random_uuid()::text, `+now+`, '`+ChangedBy+`', '', 'updated', 'LiteLLM_TeamTable', $1,
			jsonb_build_object('member', $2::jsonb), $3::jsonb)`, op.Team, entry, after); err != nil {
			return "", 0, true, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return "", 0, true, err
	}
	return changed, keysChanged, true, nil
}

// revokeTeamKeys blocks (keys KeysBlock) or deletes, as member_delete does,
// the user's keys of team.
func revokeTeamKeys(ctx context.Context, tx pgx.Tx, team, rowUserID string, keys Keys) (int, error) {
	if keys == KeysBlock {
		tag, err := tx.Exec(ctx, `UPDATE "LiteLLM_VerificationToken" SET blocked = true,
			metadata = metadata || '{"rolesync_team_blocked": true}'::jsonb, updated_at = `+utcNow+`, updated_by = '`+ChangedBy+`'
			WHERE user_id = $2 AND team_id = $1 AND blocked IS NOT TRUE`, team, rowUserID)
		return int(tag.RowsAffected()), err
	}
	copyKeys := deleteSteps[0] + ` AND team_id = $2`
	if _, err := tx.Exec(ctx, copyKeys, rowUserID, team); err != nil {
		return 0, err
	}
	tag, err := tx.Exec(ctx, `DELETE FROM "LiteLLM_VerificationToken" WHERE user_id = $1 AND team_id = $2`, rowUserID, team)
	return int(tag.RowsAffected()), err
}
