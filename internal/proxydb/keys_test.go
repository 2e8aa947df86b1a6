package proxydb

import (
	"context"
	"errors"
	"testing"
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
	// Deprovisioning is one more reason: a role grant does not lift it.
	if _, err := raw.Exec(ctx, `WITH `+keyBlockSQL("keys", `k.user_id = $1`, `$2`, `true`)+` SELECT count(*) FROM keys`, "max", string(BlockDeprovisioned)); err != nil {
		t.Fatal(err)
	}
	grant()
	want("deprovisioned, role granted", map[string]bool{"mine": true})
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
