package proxydb

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rolesync/rolesync/internal/testing/testenv"
)

// roster returns team's members_with_roles as user_id -> role.
func roster(t *testing.T, db *DB, team string) map[string]string {
	t.Helper()
	var raw []byte
	if err := db.pool.QueryRow(context.Background(), `SELECT members_with_roles FROM "LiteLLM_TeamTable" WHERE team_id = $1`, team).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var entries []struct {
		UserID string `json:"user_id"`
		Role   string `json:"role"`
	}
	_ = json.Unmarshal(raw, &entries) // '{}' (LiteLLM's column default) is no roster
	out := map[string]string{}
	for _, e := range entries {
		if _, dup := out[e.UserID]; dup {
			t.Fatalf("team %s lists %s twice", team, e.UserID)
		}
		out[e.UserID] = e.Role
	}
	return out
}

// teamOp and teamResult describe one user's changes to several teams, as
// the controller makes them: through a started TeamWriter (group commit,
// ApplyTeamBatch), one op per team.
type teamOp struct {
	Team, Role string
	Remove     bool
}

type teamResult struct {
	Added, Removed, RoleChanged, NotFound []string
	KeysChanged                           int
}

func startTeamWriter(t *testing.T, db *DB) *TeamWriter {
	t.Helper()
	w := NewTeamWriter(db)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func applyTeams(ctx context.Context, w *TeamWriter, user, email string, ops []teamOp, keys Keys, reason, object string) (teamResult, error) {
	var res teamResult
	for _, op := range ops {
		out, found, err := w.Apply(ctx, op.Team, MemberOp{RowUserID: user, Email: email, Role: op.Role, Remove: op.Remove, Reason: reason, Object: object}, keys)
		if err != nil {
			return res, fmt.Errorf("team %s of %s: %w", op.Team, user, err)
		}
		if !found {
			res.NotFound = append(res.NotFound, op.Team)
			continue
		}
		res.KeysChanged += out.KeysChanged
		switch out.Changed {
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

// memberships returns the teams whose roster lists the user, with the role.
func memberships(ctx context.Context, db *DB, user string) (map[string]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT t.team_id, COALESCE(m->>'role', 'user')
		FROM "LiteLLM_TeamTable" t, jsonb_array_elements(CASE WHEN jsonb_typeof(t.members_with_roles) = 'array' THEN t.members_with_roles ELSE '[]'::jsonb END) m
		WHERE m->>'user_id' = $1`, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var team, role string
		if err := rows.Scan(&team, &role); err != nil {
			return nil, err
		}
		out[team] = role
	}
	return out, rows.Err()
}

func userTeams(t *testing.T, db *DB, user string) []string {
	t.Helper()
	var teams []string
	if err := db.pool.QueryRow(context.Background(), `SELECT COALESCE(teams, '{}') FROM "LiteLLM_UserTable" WHERE user_id = $1`, user).Scan(&teams); err != nil {
		t.Fatal(err)
	}
	return teams
}

func TestTeamMembershipLikeLiteLLM(t *testing.T) {
	db, raw := newDB(t)
	w := startTeamWriter(t, db)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_email, user_role, teams) VALUES ('ana', 'ana@example.com', 'internal_user', '{}')`)
	exec(t, raw, `INSERT INTO "LiteLLM_BudgetTable" (budget_id, max_budget, created_by, updated_by) VALUES ('b-1', 10, 'admin', 'admin')`)
	exec(t, raw, `INSERT INTO "LiteLLM_TeamTable" (team_id, members_with_roles, metadata, updated_at) VALUES
		('search', '[{"user_id": "admin-1", "role": "admin", "user_email": null}]', '{}', now()),
		('budgeted', '{}', '{"team_member_budget_id": "b-1"}', now())`)

	res, err := applyTeams(ctx, w, "ana", "ana@example.com", []teamOp{{Team: "search", Role: "user"}, {Team: "budgeted", Role: "admin"}, {Team: "missing", Role: "user"}}, KeysBlock, "keycloak#teams[0]", "ai/ana")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Added, []string{"search", "budgeted"}) || !slices.Equal(res.NotFound, []string{"missing"}) {
		t.Fatalf("result %+v", res)
	}
	if r := roster(t, db, "search"); r["ana"] != "user" || r["admin-1"] != "admin" {
		t.Fatalf("search roster %v: ana added, the hand-added admin kept", r)
	}
	if !slices.Equal(userTeams(t, db, "ana"), []string{"search", "budgeted"}) {
		t.Fatalf("ana's teams %v", userTeams(t, db, "ana"))
	}
	// A membership row only where the team gives members a budget: a clone
	// of the team's default member budget, the member's own (LiteLLM's
	// _clone_team_default_budget_for_member).
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_TeamMembership" m JOIN "LiteLLM_BudgetTable" b USING (budget_id)
		WHERE m.user_id = 'ana' AND m.team_id = 'budgeted' AND m.budget_id <> 'b-1' AND b.max_budget = 10 AND b.created_by = 'rolesync'`); n != 1 {
		t.Fatalf("%d membership rows for budgeted with a clone of b-1", n)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_TeamMembership" WHERE team_id = 'search'`); n != 0 {
		t.Fatalf("%d membership rows for search", n)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_TeamTable" WHERE team_id = 'missing'`); n != 0 {
		t.Fatal("a missing team was created")
	}
	// Again: nothing to do, nothing written.
	if res, err := applyTeams(ctx, w, "ana", "ana@example.com", []teamOp{{Team: "search", Role: "user"}}, KeysBlock, "", ""); err != nil || len(res.Added)+len(res.RoleChanged) != 0 {
		t.Fatalf("repeat: %+v %v", res, err)
	}
	// A role change is one roster write.
	if res, err := applyTeams(ctx, w, "ana", "ana@example.com", []teamOp{{Team: "search", Role: "admin"}}, KeysBlock, "", ""); err != nil || !slices.Equal(res.RoleChanged, []string{"search"}) {
		t.Fatalf("role change: %+v %v", res, err)
	}
	if r := roster(t, db, "search"); r["ana"] != "admin" || len(r) != 2 {
		t.Fatalf("search roster after the role change %v", r)
	}
	got, err := memberships(ctx, db, "ana")
	if err != nil || len(got) != 2 || got["search"] != "admin" || got["budgeted"] != "admin" {
		t.Fatalf("Memberships %v %v", got, err)
	}

	// Removal with keys blocked, then back: the keys come back too.
	exec(t, raw, `INSERT INTO "LiteLLM_VerificationToken" (token, user_id, team_id) VALUES ('k-search', 'ana', 'search'), ('k-other', 'ana', NULL)`)
	res, err = applyTeams(ctx, w, "ana", "", []teamOp{{Team: "search", Remove: true}}, KeysBlock, "teamSync Exact", "ai/ana")
	if err != nil || !slices.Equal(res.Removed, []string{"search"}) || res.KeysChanged != 1 {
		t.Fatalf("remove: %+v %v", res, err)
	}
	if r := roster(t, db, "search"); len(r) != 1 || r["ana"] != "" {
		t.Fatalf("search roster after removal %v", r)
	}
	if slices.Contains(userTeams(t, db, "ana"), "search") {
		t.Fatal("search still in ana's teams")
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE blocked AND token = 'k-search'`); n != 1 {
		t.Fatal("the team key was not blocked")
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE blocked AND token = 'k-other'`); n != 0 {
		t.Fatal("a key of no team was blocked")
	}
	if _, err := applyTeams(ctx, w, "ana", "", []teamOp{{Team: "search", Role: "user"}}, KeysBlock, "", ""); err != nil {
		t.Fatal(err)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE blocked IS NOT TRUE AND token = 'k-search'`); n != 1 {
		t.Fatal("re-adding did not unblock the key rolesync blocked")
	}
	// Removal without Block: keys go as member_delete does them.
	res, err = applyTeams(ctx, w, "ana", "", []teamOp{{Team: "search", Remove: true}, {Team: "budgeted", Remove: true}}, KeysLeave, "", "")
	if err != nil || len(res.Removed) != 2 || res.KeysChanged != 1 {
		t.Fatalf("remove (delete keys): %+v %v", res, err)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_DeletedVerificationToken" WHERE token = 'k-search'`); n != 1 {
		t.Fatal("the deleted key was not copied to LiteLLM_DeletedVerificationToken")
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_TeamMembership" WHERE user_id = 'ana'`); n != 0 {
		t.Fatal("membership row left behind")
	}
	// Every change is in LiteLLM's audit log.
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_AuditLog" WHERE table_name = 'LiteLLM_TeamTable' AND changed_by = $1`, ChangedBy); n != 7 {
		t.Fatalf("%d team audit rows, want 7 (2 adds, role change, removal, re-add, 2 removals)", n)
	}
}

// Concurrent adds to one team (LiteLLM's lock serialises them): every
// member ends in the roster exactly once.
func TestConcurrentTeamAddsKeepEveryMember(t *testing.T) {
	db, raw := newDB(t)
	w := startTeamWriter(t, db)
	exec(t, raw, `INSERT INTO "LiteLLM_TeamTable" (team_id, updated_at) VALUES ('crowd', now())`)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := "u" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			if _, err := db.pool.Exec(context.Background(), `INSERT INTO "LiteLLM_UserTable" (user_id) VALUES ($1)`, user); err != nil {
				errs <- err
				return
			}
			if _, err := applyTeams(context.Background(), w, user, "", []teamOp{{Team: "crowd", Role: "user"}}, KeysBlock, "", ""); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if r := roster(t, db, "crowd"); len(r) != 40 {
		t.Fatalf("%d members, want 40", len(r))
	}
}

// One batch adds and removes many members with one roster write; members
// an admin added by hand and fields LiteLLM keeps in an entry are preserved.
func TestTeamBatchWritesTheRosterOnce(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_TeamTable" (team_id, members, members_with_roles, updated_at) VALUES
		('big', '{hand,gone}', '[{"user_id": "hand", "role": "admin", "user_email": "h@example.com", "extra": 1}, {"user_id": "gone", "role": "user"}]', now())`)
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, teams) SELECT 'm' || g, '{}' FROM generate_series(1, 500) g`)
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, teams) VALUES ('gone', '{big}')`)
	ops := []MemberOp{{RowUserID: "gone", Remove: true}}
	for i := 1; i <= 500; i++ {
		ops = append(ops, MemberOp{RowUserID: "m" + itoa(i), Role: "user"})
	}
	xmin := func() string {
		var x string
		if err := raw.QueryRow(ctx, `SELECT xmin::text FROM "LiteLLM_TeamTable" WHERE team_id = 'big'`).Scan(&x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	before := xmin()
	res, found, err := db.ApplyTeamBatch(ctx, "big", ops, KeysBlock)
	if err != nil || !found || res[0].Changed != "removed" || res[500].Changed != "added" {
		t.Fatalf("batch: %v %v %+v", found, err, res[:2])
	}
	if xmin() == before {
		t.Fatal("the roster was not written")
	}
	r := roster(t, db, "big")
	if len(r) != 501 || r["hand"] != "admin" || r["gone"] != "" {
		t.Fatalf("roster has %d members (hand %q)", len(r), r["hand"])
	}
	var extra int
	if err := raw.QueryRow(ctx, `SELECT (m->>'extra')::int FROM "LiteLLM_TeamTable", jsonb_array_elements(members_with_roles) m WHERE team_id = 'big' AND m->>'user_id' = 'hand'`).Scan(&extra); err != nil || extra != 1 {
		t.Fatalf("the hand-added entry lost its fields: %v %d", err, extra)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_TeamTable" WHERE team_id = 'big' AND members = '{hand}'`); n != 1 {
		t.Fatal("the legacy members array lost the hand-added member or kept the removed one")
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE 'big' = ANY(teams)`); n != 500 {
		t.Fatalf("%d users list big in their teams", n)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_AuditLog" WHERE object_id = 'big'`); n != 501 {
		t.Fatalf("%d audit rows, want 501 (one per changed member)", n)
	}
	// The same batch again changes nothing and writes nothing.
	before = xmin()
	if _, _, err := db.ApplyTeamBatch(ctx, "big", ops[1:], KeysBlock); err != nil || xmin() != before {
		t.Fatalf("a no-op batch wrote the roster (%v)", err)
	}
}

func itoa(i int) string { return fmt.Sprint(i) }

// A key blocked both for a denied role and for a team removal stays
// blocked until both are lifted, in either order.
func TestRoleAndTeamBlocksCompose(t *testing.T) {
	db, raw := newDB(t)
	w := startTeamWriter(t, db)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role, teams) VALUES ('kim', 'internal_user', '{}')`)
	exec(t, raw, `INSERT INTO "LiteLLM_TeamTable" (team_id, updated_at) VALUES ('t', now())`)
	exec(t, raw, `INSERT INTO "LiteLLM_VerificationToken" (token, user_id, team_id) VALUES ('k', 'kim', 't')`)
	blocked := func() bool {
		return count(t, raw, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE token = 'k' AND blocked`) == 1
	}
	if _, err := applyTeams(ctx, w, "kim", "", []teamOp{{Team: "t", Role: "user"}}, KeysBlock, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := applyTeams(ctx, w, "kim", "", []teamOp{{Team: "t", Remove: true}}, KeysBlock, "", ""); err != nil || !blocked() {
		t.Fatalf("team removal did not block the key (%v)", err)
	}
	if _, err := db.Apply(ctx, Change{RowUserID: "kim", Role: "internal_user_viewer", Keys: KeysBlock}); err != nil {
		t.Fatal(err)
	}
	// The role comes back: the team block stays.
	if _, err := db.Apply(ctx, Change{RowUserID: "kim", Role: "internal_user", Keys: KeysUnblock}); err != nil || !blocked() {
		t.Fatalf("a role unblock lifted the team removal's block (%v)", err)
	}
	// Denied again, then the team comes back: the role block stays.
	if _, err := db.Apply(ctx, Change{RowUserID: "kim", Role: "internal_user_viewer", Keys: KeysBlock}); err != nil {
		t.Fatal(err)
	}
	if _, err := applyTeams(ctx, w, "kim", "", []teamOp{{Team: "t", Role: "user"}}, KeysBlock, "", ""); err != nil || !blocked() {
		t.Fatalf("re-adding the team lifted the role's block (%v)", err)
	}
	// Both lifted: unblocked.
	if _, err := db.Apply(ctx, Change{RowUserID: "kim", Role: "internal_user", Keys: KeysUnblock}); err != nil || blocked() {
		t.Fatalf("the key stayed blocked after both blocks were lifted (%v)", err)
	}
}

// A removal also cleans a user who has the team only in their teams array
// (no roster entry), as LiteLLM's bulk deletion does.
func TestRemovalCleansTheTeamsArrayWithoutARosterEntry(t *testing.T) {
	db, raw := newDB(t)
	w := startTeamWriter(t, db)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, teams) VALUES ('ivy', '{t,other}')`)
	exec(t, raw, `INSERT INTO "LiteLLM_TeamTable" (team_id, members_with_roles, updated_at) VALUES ('t', '[]', now())`)
	exec(t, raw, `INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id) VALUES ('ivy', 't')`)
	exec(t, raw, `INSERT INTO "LiteLLM_VerificationToken" (token, user_id, team_id) VALUES ('ivy-t', 'ivy', 't')`)
	res, err := applyTeams(ctx, w, "ivy", "", []teamOp{{Team: "t", Remove: true}}, KeysLeave, "teamSync Exact", "ns/ivy")
	if err != nil || !slices.Equal(res.Removed, []string{"t"}) {
		t.Fatalf("removal: %+v %v", res, err)
	}
	if got := userTeams(t, db, "ivy"); !slices.Equal(got, []string{"other"}) {
		t.Fatalf("teams array %v", got)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_TeamMembership" WHERE user_id = 'ivy'`); n != 0 {
		t.Fatal("membership row left")
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE token = 'ivy-t'`); n != 0 {
		t.Fatal("the team key was not removed")
	}
	// Nothing left: the same removal changes nothing.
	if res, err := applyTeams(ctx, w, "ivy", "", []teamOp{{Team: "t", Remove: true}}, KeysLeave, "", ""); err != nil || len(res.Removed) != 0 {
		t.Fatalf("repeat: %+v %v", res, err)
	}
}

// deletionPolicy Delete rewrites the rosters under LiteLLM's per-team
// advisory lock: it waits for a member_add of one of the user's teams.
func TestDeleteTakesTheTeamLock(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, teams) VALUES ('jo', '{t}')`)
	exec(t, raw, `INSERT INTO "LiteLLM_TeamTable" (team_id, members_with_roles, updated_at) VALUES ('t', '[{"user_id": "jo", "role": "user"}]', now())`)
	holder, err := raw.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('t'))`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- db.Delete(ctx, "jo", "deletionPolicy Delete", "ns/jo") }()
	// The delete waits on the team's lock (seen in pg_locks, not guessed by a sleep).
	testenv.Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := count(t, raw, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`); n != 1 {
			return fmt.Errorf("%d advisory lock waits", n)
		}
		return nil
	}, nil)
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id = 'jo'`); n != 1 {
		t.Fatal("the user was deleted while a member_add of its team held the lock")
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r := roster(t, db, "t"); len(r) != 0 {
		t.Fatalf("roster %v", r)
	}
}

// Member budgets as LiteLLM's member add makes them: a team with
// default_team_member_models gives each added member a fresh budget whose
// allowed_models are those models (not every team model); a team with a
// default member budget gives each a clone of it (limits, duration and
// models; a window starting now); a team with neither gives no membership
// row; a default budget that is gone gives none either.
func TestMemberBudgetsLikeLiteLLM(t *testing.T) {
	db, raw := newDB(t)
	w := startTeamWriter(t, db)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, teams) VALUES ('u1', '{}'), ('u2', '{}')`)
	exec(t, raw, `INSERT INTO "LiteLLM_BudgetTable" (budget_id, max_budget, tpm_limit, budget_duration, allowed_models, model_max_budget, created_by, updated_by)
		VALUES ('tmpl', 25, 1000, '7d', '{gpt-4o-mini}', '{"gpt-4o-mini": 5}', 'admin', 'admin')`)
	exec(t, raw, `INSERT INTO "LiteLLM_TeamTable" (team_id, models, default_team_member_models, metadata, updated_at) VALUES
		('scoped', '{gpt-4o,gpt-4o-mini,o3}', '{gpt-4o-mini}', '{"team_member_budget_id": "tmpl"}', now()),
		('cloned', '{gpt-4o}', '{}', '{"team_member_budget_id": "tmpl"}', now()),
		('plain', '{gpt-4o}', '{}', '{}', now()),
		('gone', '{gpt-4o}', '{}', '{"team_member_budget_id": "deleted-budget"}', now())`)
	for _, team := range []string{"scoped", "cloned", "plain", "gone"} {
		for _, u := range []string{"u1", "u2"} {
			if _, err := applyTeams(ctx, w, u, "", []teamOp{{Team: team, Role: "user"}}, KeysLeave, "", ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	type budget struct {
		id, duration string
		models       []string
		max          *float64
		resetSet     bool
	}
	budgets := func(team string) []budget {
		t.Helper()
		rows, err := raw.Query(ctx, `SELECT b.budget_id, COALESCE(b.budget_duration, ''), COALESCE(b.allowed_models, '{}'), b.max_budget, b.budget_reset_at IS NOT NULL
			FROM "LiteLLM_TeamMembership" m JOIN "LiteLLM_BudgetTable" b USING (budget_id) WHERE m.team_id = $1 ORDER BY m.user_id`, team)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []budget
		for rows.Next() {
			var b budget
			if err := rows.Scan(&b.id, &b.duration, &b.models, &b.max, &b.resetSet); err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	scoped := budgets("scoped")
	if len(scoped) != 2 || scoped[0].id == scoped[1].id || !slices.Equal(scoped[0].models, []string{"gpt-4o-mini"}) || scoped[0].max != nil || scoped[0].duration != "" {
		t.Fatalf("default_team_member_models: %+v (want a fresh budget per member limited to gpt-4o-mini)", scoped)
	}
	cloned := budgets("cloned")
	if len(cloned) != 2 || cloned[0].id == "tmpl" || cloned[0].id == cloned[1].id || cloned[0].max == nil || *cloned[0].max != 25 ||
		cloned[0].duration != "7d" || !cloned[0].resetSet || !slices.Equal(cloned[0].models, []string{"gpt-4o-mini"}) {
		t.Fatalf("default member budget: %+v (want a clone per member)", cloned)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_TeamMembership" WHERE team_id IN ('plain', 'gone')`); n != 0 {
		t.Fatalf("%d membership rows without a budget", n)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_BudgetTable" WHERE budget_id = 'tmpl' AND max_budget = 25`); n != 1 {
		t.Fatal("the team's default budget was changed")
	}
}

func TestBudgetWindow(t *testing.T) {
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "10m": 10 * time.Minute, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "1w": 7 * 24 * time.Hour, "1mo": 30 * 24 * time.Hour} {
		if got, ok := budgetWindow(in); !ok || got != want {
			t.Errorf("%s: %v %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "d", "-1d", "1y", "1.5h"} {
		if _, ok := budgetWindow(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}
