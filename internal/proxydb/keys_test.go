package proxydb

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// keyState returns a key's blocked column and rolesync's recorded reasons.
func keyState(t *testing.T, db *DB, token string) (blocked bool, reasons string) {
	t.Helper()
	if err := db.pool.QueryRow(context.Background(), `SELECT blocked IS TRUE, COALESCE(metadata->'rolesync_blocked_by', '[]')::text
		FROM "LiteLLM_VerificationToken" WHERE token = $1`, token).Scan(&blocked, &reasons); err != nil {
		t.Fatal(err)
	}
	return blocked, reasons
}

// The bug of issue 19: with --key-revocation=Off (KeysLeave), a key blocked
// earlier by a team removal under Block must come back when the membership
// does, as the role's block does.
func TestTeamBlockLiftedWhenRevocationIsOff(t *testing.T) {
	db, raw := newDB(t)
	w := startTeamWriter(t, db)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role, teams) VALUES ('lee', 'internal_user', '{}')`)
	exec(t, raw, `INSERT INTO "LiteLLM_TeamTable" (team_id, updated_at) VALUES ('t', now())`)
	exec(t, raw, `INSERT INTO "LiteLLM_VerificationToken" (token, user_id, team_id) VALUES ('k', 'lee', 't')`)
	for _, step := range []struct {
		op   teamOp
		keys Keys
	}{{teamOp{Team: "t", Role: "user"}, KeysBlock}, {teamOp{Team: "t", Remove: true}, KeysBlock}} {
		if _, err := applyTeams(ctx, w, "lee", "", []teamOp{step.op}, step.keys, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := keyState(t, db, "k"); !b {
		t.Fatal("the removal under Block did not block the team key")
	}
	// Revocation turned off, then the user is added back.
	res, err := applyTeams(ctx, w, "lee", "", []teamOp{{Team: "t", Role: "user"}}, KeysLeave, "", "")
	if err != nil || res.KeysChanged != 1 {
		t.Fatalf("re-add under Off: %+v %v", res, err)
	}
	if b, reasons := keyState(t, db, "k"); b || reasons != "[]" {
		t.Fatalf("the team key stays blocked (%v, reasons %s) after the membership came back with revocation off", b, reasons)
	}
}

// Keys blocked by an admin or by LiteLLM's SCIM stay blocked whatever
// rolesync adds and lifts; rolesync's reasons are lifted one at a time.
func TestKeyBlockReasonsAreLiftedAlone(t *testing.T) {
	db, raw := newDB(t)
	w := startTeamWriter(t, db)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role, teams) VALUES ('max', 'internal_user', '{t}')`)
	exec(t, raw, `INSERT INTO "LiteLLM_TeamTable" (team_id, members_with_roles, updated_at) VALUES ('t', '[{"user_id": "max", "role": "user"}]', now())`)
	exec(t, raw, `INSERT INTO "LiteLLM_VerificationToken" (token, user_id, team_id, blocked, metadata) VALUES
		('mine', 'max', 't', false, '{}'),
		('admin', 'max', 't', true, '{}'),
		('scim', 'max', 't', true, '{"scim_blocked": true}')`)
	deny := func(keys Keys) {
		t.Helper()
		if _, err := db.Apply(ctx, Change{RowUserID: "max", Role: "internal_user_viewer", Keys: keys}); err != nil {
			t.Fatal(err)
		}
	}
	grant := func() {
		t.Helper()
		if _, err := db.Apply(ctx, Change{RowUserID: "max", Role: "internal_user", Keys: KeysUnblock}); err != nil {
			t.Fatal(err)
		}
	}
	team := func(op teamOp) {
		t.Helper()
		if _, err := applyTeams(ctx, w, "max", "", []teamOp{op}, KeysBlock, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	want := func(step string, states map[string]bool) {
		t.Helper()
		for token, blocked := range states {
			if b, reasons := keyState(t, db, token); b != blocked {
				t.Fatalf("%s: key %s blocked=%v (reasons %s), want %v", step, token, b, reasons, blocked)
			}
		}
	}
	deny(KeysBlock)
	want("denied", map[string]bool{"mine": true, "admin": true, "scim": true})
	team(teamOp{Team: "t", Remove: true})
	grant()
	want("granted, team still removed", map[string]bool{"mine": true, "admin": true, "scim": true})
	team(teamOp{Team: "t", Role: "user"})
	want("granted and back in the team", map[string]bool{"mine": false, "admin": true, "scim": true})
	if _, reasons := keyState(t, db, "admin"); reasons != `["external"]` {
		t.Fatalf("the admin's block is recorded as %s", reasons)
	}
	// LiteLLM's SCIM reactivation lifts its own block (blocked=false, the
	// marker gone): a later lift of rolesync's reasons does not re-block it.
	exec(t, raw, `UPDATE "LiteLLM_VerificationToken" SET blocked = false, metadata = metadata - 'scim_blocked' WHERE token = 'scim'`)
	deny(KeysBlock)
	grant()
	want("SCIM reactivated", map[string]bool{"mine": false, "admin": true, "scim": false})
	// An admin who unblocks their own key: rolesync's later block and lift leave it unblocked.
	exec(t, raw, `UPDATE "LiteLLM_VerificationToken" SET blocked = false WHERE token = 'admin'`)
	deny(KeysBlock)
	want("denied again", map[string]bool{"admin": true})
	grant()
	want("granted again", map[string]bool{"admin": false})
	// Deprovisioning is one more reason, recorded as such; a team's block
	// is not lifted with it. A grant (the directory reactivated the user:
	// a deprovisioned user is never granted) lifts it.
	if _, err := db.Apply(ctx, Change{RowUserID: "max", Role: "internal_user_viewer", Keys: KeysBlock, Deprovisioned: true}); err != nil {
		t.Fatal(err)
	}
	want("deprovisioned", map[string]bool{"mine": true})
	if _, reasons := keyState(t, db, "mine"); reasons != `["deprovisioned"]` {
		t.Fatalf("a deprovisioned user's key is blocked for %s", reasons)
	}
	team(teamOp{Team: "t", Remove: true})
	grant()
	want("reactivated, still out of the team", map[string]bool{"mine": true})
	if _, reasons := keyState(t, db, "mine"); reasons != `["team"]` {
		t.Fatalf("after reactivation the key is blocked for %s, want only the team", reasons)
	}
	team(teamOp{Team: "t", Role: "user"})
	want("reactivated and back in the team", map[string]bool{"mine": false})
	auditRowsAreJSONText(t, raw) // role, key and team audit rows
}

// Keys marked by an earlier release (rolesync_blocked, rolesync_team_blocked)
// are read as the reasons role and team.
func TestLegacyKeyMarkersAreReasons(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role) VALUES ('old', 'internal_user_viewer')`)
	exec(t, raw, `INSERT INTO "LiteLLM_VerificationToken" (token, user_id, blocked, metadata) VALUES
		('r', 'old', true, '{"rolesync_blocked": true}'), ('rt', 'old', true, '{"rolesync_blocked": true, "rolesync_team_blocked": true}')`)
	if _, err := db.Apply(ctx, Change{RowUserID: "old", Role: "internal_user", Keys: KeysUnblock}); err != nil {
		t.Fatal(err)
	}
	if b, reasons := keyState(t, db, "r"); b || reasons != "[]" {
		t.Fatalf("a legacy role block was not lifted: %v %s", b, reasons)
	}
	if b, reasons := keyState(t, db, "rt"); !b || reasons != `["team"]` {
		t.Fatalf("a legacy team block was lost: %v %s", b, reasons)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE metadata ? 'rolesync_blocked' OR metadata ? 'rolesync_team_blocked'`); n != 0 {
		t.Fatal("legacy markers left")
	}
}

// blockingStore holds every batch until its context ends, like a
// transaction stuck behind a lock when leadership is lost.
type blockingStore struct{ calls chan struct{} }

func (s blockingStore) ApplyTeamBatch(ctx context.Context, _ string, _ []MemberOp, _ Keys) ([]MemberResult, bool, error) {
	s.calls <- struct{}{}
	<-ctx.Done()
	return nil, true, ctx.Err()
}

// A TeamWriter whose context ends (leadership lost) rolls back what it is
// writing and writes nothing more: the old leader cannot write beside the
// new one.
func TestTeamWriterStopsWritingWithItsContext(t *testing.T) {
	db, raw := newDB(t)
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, teams) VALUES ('a', '{}'), ('b', '{}')`)
	exec(t, raw, `INSERT INTO "LiteLLM_TeamTable" (team_id, updated_at) VALUES ('t', now())`)
	w := NewTeamWriter(db)
	ctx, lose := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Start(ctx) }()
	if _, _, err := w.Apply(context.Background(), "t", MemberOp{RowUserID: "a", Role: "user"}, KeysLeave); err != nil {
		t.Fatal(err)
	}
	lose()
	<-done
	_, _, err := w.Apply(context.Background(), "t", MemberOp{RowUserID: "b", Role: "user"}, KeysLeave)
	if !errors.Is(err, ErrTeamWriterStopped) {
		t.Fatalf("a change after the context ended: %v, want ErrTeamWriterStopped", err)
	}
	if r := roster(t, db, "t"); len(r) != 1 || r["a"] != "user" {
		t.Fatalf("roster %v: the stopped writer wrote", r)
	}

	// A batch in flight when the context ends is cancelled, and the changes
	// queued behind it are refused unwritten.
	s := blockingStore{calls: make(chan struct{}, 4)}
	w = NewTeamWriter(s)
	ctx, lose = context.WithCancel(context.Background())
	go func() { _ = w.Start(ctx) }()
	errs := make(chan error, 2)
	go func() {
		_, _, err := w.Apply(context.Background(), "t", MemberOp{RowUserID: "a"}, KeysLeave)
		errs <- err
	}()
	<-s.calls
	go func() {
		_, _, err := w.Apply(context.Background(), "t", MemberOp{RowUserID: "b"}, KeysLeave)
		errs <- err
	}()
	lose() // b is queued behind the running batch or comes after the end: refused either way
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrTeamWriterStopped) {
			t.Fatalf("change during a lost lease: %v, want ErrTeamWriterStopped", err)
		}
	}
	if len(s.calls) != 0 {
		t.Fatal("a batch started after the context ended")
	}
}

// rowActive returns the row's metadata.scim_active ("" when absent) and
// whether rolesync's deactivation mark is there.
func rowActive(t *testing.T, db *DB, user string) (active string, ours bool) {
	t.Helper()
	if err := db.pool.QueryRow(context.Background(), `SELECT COALESCE(metadata->>'scim_active', ''), metadata ? 'rolesync_deactivated'
		FROM "LiteLLM_UserTable" WHERE user_id = $1`, user).Scan(&active, &ours); err != nil {
		t.Fatal(err)
	}
	return active, ours
}

// A denied user is deactivated the way LiteLLM's SCIM does it (its key
// authentication then refuses every key of the user with 401), recorded as
// rolesync's: a grant lifts exactly that, never a deactivation LiteLLM's
// SCIM made, and restores the value it replaced.
func TestDeactivationLikeLiteLLMSCIM(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role, metadata) VALUES
		('ann', 'internal_user', '{"note": "kept"}'),
		('scim-off', 'internal_user', '{"scim_active": false}'),
		('scim-on', 'internal_user', '{"scim_active": true}'),
		('org', 'org_admin', '{}')`)
	deny := func(user string) Outcome {
		t.Helper()
		o, err := db.Apply(ctx, Change{RowUserID: user, Role: "internal_user_viewer", Keys: KeysLeave, Activation: ActivationDeactivate, Reason: "denied: no rule matched"})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	grant := func(user string) Outcome {
		t.Helper()
		o, err := db.Apply(ctx, Change{RowUserID: user, Role: "internal_user", Keys: KeysUnblock, Activation: ActivationRestore})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if o := deny("ann"); !o.Inactive || !o.ActivationChanged || !o.RoleChanged {
		t.Fatalf("deny: %+v", o)
	}
	if active, ours := rowActive(t, db, "ann"); active != "false" || !ours {
		t.Fatalf("ann after the denial: scim_active=%q ours=%v", active, ours)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id = 'ann' AND metadata->>'note' = 'kept'`); n != 1 {
		t.Fatal("the row's other metadata was lost")
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_AuditLog" WHERE object_id = 'ann' AND action = 'updated' AND (updated_values #>> '{}')::jsonb->>'scim_active' = 'false'`); n != 1 {
		t.Fatalf("%d deactivation audit rows", n)
	}
	if o := deny("ann"); o.ActivationChanged || o.RoleChanged || !o.Inactive {
		t.Fatalf("deny again wrote: %+v", o)
	}
	if o := grant("ann"); o.Inactive || !o.ActivationChanged {
		t.Fatalf("grant: %+v", o)
	}
	if active, ours := rowActive(t, db, "ann"); active != "" || ours {
		t.Fatalf("ann after the grant: scim_active=%q ours=%v, want both gone", active, ours)
	}

	// LiteLLM's SCIM deactivated this user: rolesync's denial and grant leave it so.
	if o := deny("scim-off"); o.ActivationChanged || !o.Inactive {
		t.Fatalf("deny of a SCIM-deactivated user: %+v", o)
	}
	if o := grant("scim-off"); o.ActivationChanged || !o.Inactive {
		t.Fatalf("a grant lifted LiteLLM's SCIM deactivation: %+v", o)
	}
	// A SCIM-active user gets scim_active true back.
	deny("scim-on")
	grant("scim-on")
	if active, ours := rowActive(t, db, "scim-on"); active != "true" || ours {
		t.Fatalf("scim-on after deny and grant: scim_active=%q ours=%v", active, ours)
	}
	// A role rolesync does not manage: nothing written.
	if o := deny("org"); o.ActivationChanged || o.Inactive {
		t.Fatalf("deny of an org_admin row: %+v", o)
	}
	// Leave touches nothing.
	if o, err := db.Apply(ctx, Change{RowUserID: "ann", Role: "internal_user_viewer", Keys: KeysLeave, Activation: ActivationLeave}); err != nil || o.ActivationChanged || o.Inactive {
		t.Fatalf("leave: %+v %v", o, err)
	}
	// Find reports the activation.
	if row, _, err := db.Find(ctx, "scim-off", ""); err != nil || !row.Inactive {
		t.Fatalf("Find: %+v %v", row, err)
	}
	auditRowsAreJSONText(t, raw)
}

// A deleted key is copied to "LiteLLM_DeletedVerificationToken" with every
// column LiteLLM's own key deletion keeps (every column the two tables
// share), by the user's deletion and by a team removal alike.
func TestDeletedKeysKeepEveryColumn(t *testing.T) {
	db, raw := newDB(t)
	w := startTeamWriter(t, db)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role, teams) VALUES ('gus', 'internal_user', '{}'), ('hal', 'internal_user', '{t}')`)
	exec(t, raw, `INSERT INTO "LiteLLM_TeamTable" (team_id, members_with_roles, updated_at) VALUES ('t', '[{"user_id": "hal", "role": "user"}]', now())`)
	for _, k := range []struct{ token, user, team string }{{"gus-key", "gus", ""}, {"hal-key", "hal", "t"}} {
		exec(t, raw, `INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, spend, models, user_id, team_id, agent_id, project_id,
			metadata, router_settings, allowed_routes, policies, access_group_ids, allowed_cache_controls, soft_budget_cooldown,
			rotation_count, auto_rotate, rotation_interval, last_active, created_by, updated_by)
			VALUES ($1, 'sk-...x', 'ci', 1.5, '{gpt-4}', $2, NULLIF($3, ''), NULL, NULL, '{"m": 1}', '{"r": 2}', '{/chat}',
			'{p1}', '{ag1}', '{no-cache}', true, 3, true, '30d', now(), 'admin', 'admin')`, k.token, k.user, k.team)
	}
	shared := func(token string) map[string]any {
		t.Helper()
		var raw []byte
		if err := db.pool.QueryRow(ctx, `SELECT to_jsonb(k) FROM "LiteLLM_VerificationToken" k WHERE token = $1`, token).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return m
	}
	before := map[string]map[string]any{"gus-key": shared("gus-key"), "hal-key": shared("hal-key")}
	if err := db.Delete(ctx, "gus", "deletionPolicy Delete", "ns/gus"); err != nil {
		t.Fatal(err)
	}
	if _, err := applyTeams(ctx, w, "hal", "", []teamOp{{Team: "t", Remove: true}}, KeysLeave, "", ""); err != nil {
		t.Fatal(err)
	}
	for token, want := range before {
		var raw []byte
		if err := db.pool.QueryRow(ctx, `SELECT to_jsonb(d) FROM "LiteLLM_DeletedVerificationToken" d WHERE token = $1`, token).Scan(&raw); err != nil {
			t.Fatalf("%s not copied: %v", token, err)
		}
		var got map[string]any
		_ = json.Unmarshal(raw, &got)
		for col, v := range want {
			if _, has := got[col]; !has {
				continue // a column only the key table has
			}
			if !reflect.DeepEqual(got[col], v) {
				t.Errorf("%s: column %s copied as %v, want %v", token, col, got[col], v)
			}
		}
		if got["deleted_by"] != ChangedBy || got["litellm_changed_by"] != ChangedBy || got["deleted_at"] == nil {
			t.Errorf("%s: deleted_by %v litellm_changed_by %v deleted_at %v", token, got["deleted_by"], got["litellm_changed_by"], got["deleted_at"])
		}
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_VerificationToken"`); n != 0 {
		t.Fatalf("%d keys left", n)
	}
}

// A database whose key tables are not LiteLLM's refuses to delete keys
// (nothing is written) instead of dropping them uncopied.
func TestKeyCopyNeedsLiteLLMTables(t *testing.T) {
	if _, err := buildKeyCopy([]string{"token", "user_id"}, nil); err == nil {
		t.Fatal("no deleted-keys table, yet a copy statement")
	}
	if _, err := buildKeyCopy([]string{"token"}, []string{"token"}); err == nil {
		t.Fatal("a deleted-keys table without id and deleted_at accepted")
	}
	sql, err := buildKeyCopy([]string{"token", "spend", "new_col"}, []string{"id", "token", "spend", "new_col", "deleted_at", "deleted_by"})
	if err != nil || !strings.Contains(sql, `"new_col"`) || strings.Contains(sql, "litellm_changed_by") {
		t.Fatalf("%v %s", err, sql)
	}
}

// auditRowsAreJSONText checks LiteLLM's encoding of every audit row
// rolesync wrote: before_value and updated_values hold JSON text (a JSON
// string, as LiteLLM's json.dumps into its Json column leaves them) of an
// object.
func auditRowsAreJSONText(t *testing.T, raw interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}) {
	t.Helper()
	var rows, bad int
	if err := raw.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE
			(before_value IS NOT NULL AND (jsonb_typeof(before_value) <> 'string' OR jsonb_typeof((before_value #>> '{}')::jsonb) <> 'object'))
			OR jsonb_typeof(updated_values) <> 'string' OR jsonb_typeof((updated_values #>> '{}')::jsonb) <> 'object')
		FROM "LiteLLM_AuditLog" WHERE changed_by = $1`, ChangedBy).Scan(&rows, &bad); err != nil {
		t.Fatal(err)
	}
	if rows == 0 || bad != 0 {
		t.Fatalf("%d of %d audit rows are not LiteLLM's JSON text", bad, rows)
	}
}
