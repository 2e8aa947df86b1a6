package proxydb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rolesync/rolesync/internal/testing/pgtest"
)

var server *pgtest.Server

func TestMain(m *testing.M) {
	var err error
	if server, err = pgtest.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := server.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func newDB(t *testing.T) (*DB, *pgx.Conn) {
	t.Helper()
	return newDBWithPool(t, 4)
}

// newDBWithPool is newDB with a pool of conns connections.
func newDBWithPool(t testing.TB, conns int32) (*DB, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	dsn, err := server.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, dsn, conns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	raw, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close(context.Background()) })
	return db, raw
}

func exec(t *testing.T, raw *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := raw.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, raw *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := raw.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// rowVersion returns the row's xmin: it changes with every write of the row.
func rowVersion(t *testing.T, raw *pgx.Conn, userID string) string {
	t.Helper()
	var xmin string
	if err := raw.QueryRow(context.Background(), `SELECT xmin::text FROM "LiteLLM_UserTable" WHERE user_id = $1`, userID).Scan(&xmin); err != nil {
		t.Fatal(err)
	}
	return xmin
}

func TestSchemaIsLiteLLMs(t *testing.T) {
	_, raw := newDB(t)
	ctx := context.Background()
	// Every column LiteLLM's user table has, with LiteLLM's defaults.
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, updated_at) VALUES ('u1', now())`)
	var teams, ccs []string
	var spend float64
	var metadata, modelSpend string
	var models []string
	if err := raw.QueryRow(ctx, `SELECT teams, allowed_cache_controls, spend, metadata::text, model_spend::text, models
		FROM "LiteLLM_UserTable" WHERE user_id = 'u1'`).Scan(&teams, &ccs, &spend, &metadata, &modelSpend, &models); err != nil {
		t.Fatal(err)
	}
	if len(teams) != 0 || len(ccs) != 0 || spend != 0 || metadata != "{}" || modelSpend != "{}" || models != nil {
		t.Fatalf("defaults: %v %v %v %s %s %v", teams, ccs, spend, metadata, modelSpend, models)
	}
	// sso_user_id is unique; emails are not, and are indexed lower-cased.
	exec(t, raw, `UPDATE "LiteLLM_UserTable" SET sso_user_id = 'sso-1' WHERE user_id = 'u1'`)
	if _, err := raw.Exec(ctx, `INSERT INTO "LiteLLM_UserTable" (user_id, sso_user_id) VALUES ('u2', 'sso-1')`); err == nil {
		t.Fatal("a second row with the same sso_user_id was accepted")
	}
	if n := count(t, raw, `SELECT count(*) FROM pg_indexes WHERE indexname = 'LiteLLM_UserTable_user_email_lower_idx'`); n != 1 {
		t.Fatal("no lower(user_email) index")
	}
	// An organization membership blocks a plain DELETE (ON DELETE RESTRICT).
	exec(t, raw, `INSERT INTO "LiteLLM_BudgetTable" (budget_id, created_by, updated_by) VALUES ('b', 'x', 'x')`)
	exec(t, raw, `INSERT INTO "LiteLLM_OrganizationTable" (organization_id, organization_alias, budget_id, created_by, updated_by) VALUES ('o', 'o', 'b', 'x', 'x')`)
	exec(t, raw, `INSERT INTO "LiteLLM_OrganizationMembership" (user_id, organization_id) VALUES ('u1', 'o')`)
	if _, err := raw.Exec(ctx, `DELETE FROM "LiteLLM_UserTable" WHERE user_id = 'u1'`); err == nil || !strings.Contains(err.Error(), "23503") {
		t.Fatalf("plain delete of a user with an organization membership: %v", err)
	}
}

func TestFindFollowsLiteLLMsLookupOrder(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	// An invited user: UUID user_id, SSO id recorded at first login.
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, sso_user_id, user_email, user_role) VALUES
		('6f1c0a52-0000-4000-8000-000000000001', 'alice', 'Alice@Example.com', 'internal_user'),
		('alice-by-email', NULL, 'alice@example.com', 'internal_user_viewer'),
		('bob', NULL, 'bob@example.com', 'internal_user'),
		('3a1e0000-0000-4000-8000-000000000002', NULL, 'Carol@Example.com', NULL),
		('dup-1', NULL, 'dup@example.com', NULL),
		('dup-2', NULL, 'DUP@example.com', NULL)`)
	cases := []struct {
		id, email, want string
		found           bool
		ambiguous       bool
	}{
		{id: "bob", email: "other@example.com", want: "bob", found: true},                                    // by user_id first
		{id: "alice", email: "alice@example.com", want: "6f1c0a52-0000-4000-8000-000000000001", found: true}, // then sso_user_id, before email
		{id: "carol-sso", email: "carol@EXAMPLE.com", want: "3a1e0000-0000-4000-8000-000000000002", found: true},
		{id: "nobody", email: "nobody@example.com"},
		{id: "nobody", email: ""},
		{id: "dup", email: "dup@example.com", ambiguous: true},
	}
	for _, c := range cases {
		row, found, err := db.Find(ctx, c.id, c.email)
		var amb *AmbiguousError
		if c.ambiguous {
			if !errors.As(err, &amb) || strings.Join(amb.Rows, ",") != "dup-1,dup-2" {
				t.Errorf("%s: want AmbiguousError naming dup-1, dup-2, got %v", c.id, err)
			}
			continue
		}
		if err != nil || found != c.found || row.UserID != c.want {
			t.Errorf("%s/%s: got %q %v %v, want %q %v", c.id, c.email, row.UserID, found, err, c.want, c.found)
		}
	}
}

// TestLookAlikeEmailNeverBindsARow: an email that only folds into a row's
// address under Unicode case folding (the Kelvin sign, as PostgreSQL's
// lower() and Go's strings.EqualFold both fold it) never finds that row;
// ASCII case still does.
func TestLookAlikeEmailNeverBindsARow(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_email, user_role) VALUES ('kim-row', 'kim@example.com', 'proxy_admin')`)
	const lookAlike = "\u212aim@example.com"
	var folds bool
	if err := raw.QueryRow(ctx, `SELECT lower($1::text) = lower('kim@example.com')`, lookAlike).Scan(&folds); err != nil {
		t.Fatal(err)
	}
	if !folds || !strings.EqualFold(lookAlike, "kim@example.com") {
		t.Fatalf("lower() folds the Kelvin sign: %v; the test needs a database whose lower() does (a UTF-8 locale)", folds)
	}
	if row, found, err := db.Find(ctx, "attacker", lookAlike); found || err != nil {
		t.Fatalf("the look-alike email found %+v (%v)", row, err)
	}
	if _, found, err := Pick([]Row{{UserID: "kim-row", Email: "kim@example.com"}}, "attacker", lookAlike); found || err != nil {
		t.Fatalf("Pick matched the look-alike: %v", err)
	}
	if row, found, err := db.Find(ctx, "kim-sso", "KIM@Example.com"); !found || err != nil || row.UserID != "kim-row" {
		t.Fatalf("ASCII case: %+v %v %v", row, found, err)
	}
}

func TestApplyWritesNothingWhenUnchanged(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role) VALUES ('bob', 'internal_user')`)
	before := rowVersion(t, raw, "bob")
	for range 3 {
		o, err := db.Apply(ctx, Change{RowUserID: "bob", Role: "internal_user", Reason: "r"})
		if err != nil || !o.Found || o.RoleChanged || o.Before != "internal_user" {
			t.Fatalf("apply: %+v %v", o, err)
		}
	}
	if after := rowVersion(t, raw, "bob"); after != before {
		t.Fatalf("row rewritten (xmin %s -> %s) although nothing changed", before, after)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_AuditLog"`); n != 0 {
		t.Fatalf("%d audit rows for no change", n)
	}
	o, err := db.Apply(ctx, Change{RowUserID: "nobody", Role: "internal_user"})
	if err != nil || o.Found {
		t.Fatalf("apply to a missing row: %+v %v", o, err)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_UserTable"`); n != 1 {
		t.Fatal("Apply created a row")
	}
}

func TestApplyChangesTheRoleKeepsLiteLLMsColumnsAndAudits(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_email, user_role, teams, spend, updated_at)
		VALUES ('carol', 'carol@old.example', 'internal_user_viewer', '{team-a}', 12.5, '2020-01-01')`)
	o, err := db.Apply(ctx, Change{RowUserID: "carol", Role: "proxy_admin", Reason: "keycloak#0 groups=admins", Object: "ai/carol"})
	if err != nil || !o.RoleChanged || o.Before != "internal_user_viewer" {
		t.Fatalf("apply: %+v %v", o, err)
	}
	var email, role string
	var teams []string
	var spend float64
	var updatedAt time.Time
	if err := raw.QueryRow(ctx, `SELECT user_email, user_role, teams, spend, updated_at FROM "LiteLLM_UserTable" WHERE user_id = 'carol'`).Scan(&email, &role, &teams, &spend, &updatedAt); err != nil {
		t.Fatal(err)
	}
	if role != "proxy_admin" || email != "carol@old.example" || len(teams) != 1 || spend != 12.5 || updatedAt.Year() == 2020 {
		t.Fatalf("row after update: %q %q %v %v %v", role, email, teams, spend, updatedAt)
	}
	var before, after string
	if err := raw.QueryRow(ctx, `SELECT (before_value #>> '{}')::jsonb->>'user_role', (updated_values #>> '{}')::jsonb->>'user_role' FROM "LiteLLM_AuditLog"
		WHERE action = 'updated' AND table_name = 'LiteLLM_UserTable' AND object_id = 'carol' AND changed_by = 'rolesync'
		AND (updated_values #>> '{}')::jsonb->'rolesync'->>'reason' = 'keycloak#0 groups=admins' AND (updated_values #>> '{}')::jsonb->'rolesync'->>'proxyUser' = 'ai/carol'`).Scan(&before, &after); err != nil {
		t.Fatalf("audit row: %v", err)
	}
	if before != "internal_user_viewer" || after != "proxy_admin" {
		t.Fatalf("audit row %s -> %s", before, after)
	}
}

func TestApplyNeverOverwritesUnmanagedRoles(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	for _, r := range UnmanagedRoles {
		exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role) VALUES ($1, $1)`, r)
		exec(t, raw, `INSERT INTO "LiteLLM_VerificationToken" (token, user_id) VALUES ($1, $2)`, "key-"+r, r)
		v := rowVersion(t, raw, r)
		o, err := db.Apply(ctx, Change{RowUserID: r, Role: "internal_user_viewer", Keys: KeysBlock})
		if err != nil || !o.Found || o.RoleChanged || o.KeysChanged != 0 || o.Before != r {
			t.Fatalf("%s: %+v %v", r, o, err)
		}
		if rowVersion(t, raw, r) != v {
			t.Fatalf("%s row rewritten", r)
		}
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE blocked`); n != 0 {
		t.Fatalf("%d keys of unmanaged users blocked", n)
	}
}

func TestKeysBlockedAndOnlyThoseUnblocked(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role) VALUES ('erin', 'proxy_admin'), ('other', 'internal_user')`)
	exec(t, raw, `INSERT INTO "LiteLLM_VerificationToken" (token, user_id, blocked) VALUES
		('k1', 'erin', NULL), ('k2', 'erin', false), ('k3', 'erin', true), ('k4', 'other', NULL)`)
	o, err := db.Apply(ctx, Change{RowUserID: "erin", Role: "internal_user_viewer", Keys: KeysBlock, Reason: "denied: no rule matched"})
	if err != nil || !o.RoleChanged || o.KeysChanged != 2 {
		t.Fatalf("block: %+v %v", o, err)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE user_id = 'erin' AND blocked`); n != 3 {
		t.Fatalf("%d of erin's keys blocked", n)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE token = 'k4' AND blocked IS NOT TRUE`); n != 1 {
		t.Fatal("another user's key was blocked")
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_AuditLog" WHERE action = 'blocked' AND table_name = 'LiteLLM_VerificationToken'`); n != 2 {
		t.Fatalf("%d block audit rows", n)
	}
	// Blocking again changes nothing.
	if o, err := db.Apply(ctx, Change{RowUserID: "erin", Role: "internal_user_viewer", Keys: KeysBlock}); err != nil || o.KeysChanged != 0 || o.RoleChanged {
		t.Fatalf("block again: %+v %v", o, err)
	}
	// Granted again: the two keys rolesync blocked come back; k3, blocked by an admin, stays blocked.
	o, err = db.Apply(ctx, Change{RowUserID: "erin", Role: "internal_user", Keys: KeysUnblock})
	if err != nil || o.KeysChanged != 2 {
		t.Fatalf("unblock: %+v %v", o, err)
	}
	var blocked []string
	rows, _ := raw.Query(ctx, `SELECT token FROM "LiteLLM_VerificationToken" WHERE blocked ORDER BY token`)
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		blocked = append(blocked, s)
	}
	if strings.Join(blocked, ",") != "k3" {
		t.Fatalf("blocked after unblock: %v", blocked)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE metadata ? 'rolesync_blocked_by' AND token <> 'k3'`); n != 0 {
		t.Fatal("rolesync's mark left on a key it unblocked")
	}
	// An unblock is an "updated" in LiteLLM's audit vocabulary (AUDIT_ACTIONS has no "unblocked").
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_AuditLog" WHERE table_name = 'LiteLLM_VerificationToken' AND action = 'updated' AND (updated_values #>> '{}')::jsonb->>'blocked' = 'false'`); n != 2 {
		t.Fatalf("%d unblock audit rows", n)
	}
}

func TestDeleteLikeLiteLLM(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role, teams) VALUES ('frank', 'internal_user', '{t1}'), ('admin', 'proxy_admin', '{}')`)
	exec(t, raw, `INSERT INTO "LiteLLM_BudgetTable" (budget_id, created_by, updated_by) VALUES ('b', 'x', 'x')`)
	exec(t, raw, `INSERT INTO "LiteLLM_OrganizationTable" (organization_id, organization_alias, budget_id, created_by, updated_by) VALUES ('o', 'o', 'b', 'x', 'x')`)
	exec(t, raw, `INSERT INTO "LiteLLM_OrganizationMembership" (user_id, organization_id) VALUES ('frank', 'o'), ('admin', 'o')`)
	exec(t, raw, `INSERT INTO "LiteLLM_InvitationLink" (id, user_id, expires_at, created_at, created_by, updated_at, updated_by) VALUES
		('i1', 'frank', now(), now(), 'admin', now(), 'admin'), ('i2', 'admin', now(), now(), 'frank', now(), 'frank')`)
	exec(t, raw, `INSERT INTO "LiteLLM_TeamTable" (team_id, members, members_with_roles) VALUES
		('t1', '{frank,admin}', '[{"user_id": "frank", "role": "user", "user_email": null}, {"user_id": "admin", "role": "admin", "user_email": null}]')`)
	exec(t, raw, `INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id) VALUES ('frank', 't1')`)
	exec(t, raw, `INSERT INTO "LiteLLM_VerificationToken" (token, user_id, team_id) VALUES ('fk1', 'frank', 't1'), ('fk2', 'frank', NULL), ('ak', 'admin', NULL)`)

	if err := db.Delete(ctx, "frank", "deletionPolicy Delete", "ai/frank"); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]int{
		`SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id = 'frank'`:                                            0,
		`SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE user_id = 'frank'`:                                    0,
		`SELECT count(*) FROM "LiteLLM_DeletedVerificationToken" WHERE user_id = 'frank' AND deleted_by = 'rolesync'`: 2,
		`SELECT count(*) FROM "LiteLLM_TeamMembership" WHERE user_id = 'frank'`:                                       0,
		`SELECT count(*) FROM "LiteLLM_OrganizationMembership"`:                                                       1,
		`SELECT count(*) FROM "LiteLLM_InvitationLink"`:                                                               0,
		`SELECT count(*) FROM "LiteLLM_TeamTable" WHERE members = '{admin}' AND jsonb_array_length(members_with_roles) = 1
			AND members_with_roles->0->>'user_id' = 'admin'`: 1,
		`SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE user_id = 'admin'`:                                                                                    1,
		`SELECT count(*) FROM "LiteLLM_AuditLog" WHERE action = 'deleted' AND object_id = 'frank' AND (before_value #>> '{}')::jsonb->>'user_role' = 'internal_user'`: 1,
	} {
		if n := count(t, raw, q); n != want {
			t.Errorf("%s: %d, want %d", q, n, want)
		}
	}
	if err := db.Delete(ctx, "frank", "again", "ai/frank"); err != nil {
		t.Fatalf("deleting a missing row: %v", err)
	}
	auditRowsAreJSONText(t, raw)
}

func TestDeleteBlockedNamesTheTableAndDeletesNothing(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role) VALUES ('gina', 'internal_user')`)
	exec(t, raw, `INSERT INTO "LiteLLM_VerificationToken" (token, user_id) VALUES ('gk', 'gina')`)
	// A table of a newer LiteLLM release rolesync does not know references
	// gina (ON DELETE RESTRICT): nothing is deleted, the table is named.
	exec(t, raw, `CREATE TABLE "LiteLLM_FutureGrant" (id text PRIMARY KEY, user_id text NOT NULL REFERENCES "LiteLLM_UserTable"(user_id) ON DELETE RESTRICT)`)
	exec(t, raw, `INSERT INTO "LiteLLM_FutureGrant" (id, user_id) VALUES ('g', 'gina')`)
	err := db.Delete(ctx, "gina", "deletionPolicy Delete", "ai/gina")
	var blocked *DeleteBlockedError
	if !errors.As(err, &blocked) || blocked.Table != "LiteLLM_FutureGrant" {
		t.Fatalf("want DeleteBlockedError naming LiteLLM_FutureGrant, got %v", err)
	}
	for _, q := range []string{
		`SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id = 'gina'`,
		`SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE token = 'gk'`,
	} {
		if n := count(t, raw, q); n != 1 {
			t.Errorf("%s: %d after a blocked delete", q, n)
		}
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_DeletedVerificationToken"`) + count(t, raw, `SELECT count(*) FROM "LiteLLM_AuditLog"`); n != 0 {
		t.Fatal("a blocked delete left rows behind")
	}
}

func TestWithoutAuditLogTable(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	exec(t, raw, `DROP TABLE "LiteLLM_AuditLog"`)
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role) VALUES ('h', 'internal_user')`)
	if o, err := db.Apply(ctx, Change{RowUserID: "h", Role: "proxy_admin"}); err != nil || !o.RoleChanged {
		t.Fatalf("apply: %+v %v", o, err)
	}
	if err := db.Delete(ctx, "h", "", ""); err != nil {
		t.Fatal(err)
	}
}

func TestSSORoleMappingsDetected(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	if on, err := db.SSORoleMappings(ctx); err != nil || on {
		t.Fatalf("empty: %v %v", on, err)
	}
	exec(t, raw, `INSERT INTO "LiteLLM_SSOConfig" (sso_settings, updated_at) VALUES ('{"role_mappings": {"provider": "generic", "group_claim": "groups", "roles": {"proxy_admin": ["admins"]}}}', now())`)
	if on, err := db.SSORoleMappings(ctx); err != nil || !on {
		t.Fatalf("with role_mappings: %v %v", on, err)
	}
}

func TestDatabaseDownIsAnErrorAndLosesNothing(t *testing.T) {
	if !server.Private() {
		t.Fatal("this fault test stops the database: unset TEST_DATABASE_URL so it gets a private server")
	}
	ctx := context.Background()
	db, raw := newDB(t)
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role) VALUES ('frank', 'internal_user')`)
	if err := server.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			_ = server.Restart()
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := db.Apply(cctx, Change{RowUserID: "frank", Role: "proxy_admin"})
	cancel()
	if err == nil || !strings.Contains(err.Error(), "set role of user frank") {
		t.Fatalf("apply against a stopped database: %v", err)
	}
	if err := server.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	row, found, err := db.Find(ctx, "frank", "")
	if err != nil || !found || row.Role != "internal_user" {
		t.Fatalf("after restart: %+v %v (the failed write must not have landed)", row, err)
	}
	if o, err := db.Apply(ctx, Change{RowUserID: "frank", Role: "proxy_admin"}); err != nil || !o.RoleChanged {
		t.Fatalf("apply after restart: %+v %v", o, err)
	}
}

func TestOpenNeverLeaksThePassword(t *testing.T) {
	_, err := Open(context.Background(), "postgres://u:s3cr3t-pw@host:notaport/db", 1)
	if err == nil || strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Fatalf("Open error %v", err)
	}
}

func TestPick(t *testing.T) {
	rows := []Row{{UserID: "x", Email: "A@b.c"}, {UserID: "y", SSOUserID: "s"}, {UserID: "s2"}}
	if r, ok, _ := Pick(rows, "s", "a@b.c"); !ok || r.UserID != "y" {
		t.Fatalf("sso before email: %+v", r)
	}
	if r, ok, _ := Pick(rows, "q", "a@B.C"); !ok || r.UserID != "x" {
		t.Fatalf("email: %+v", r)
	}
	if _, ok, err := Pick(rows, "q", ""); ok || err != nil {
		t.Fatal("no email, no id: nothing")
	}
}
