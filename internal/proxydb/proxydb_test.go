package proxydb

import (
	"context"
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
	ctx := context.Background()
	dsn, err := server.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, dsn, 4)
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

// rowVersion returns the row's xmin: it changes with every write of the row.
func rowVersion(t *testing.T, raw *pgx.Conn, userID string) string {
	t.Helper()
	var xmin string
	if err := raw.QueryRow(context.Background(), `SELECT xmin::text FROM "LiteLLM_UserTable" WHERE user_id = $1`, userID).Scan(&xmin); err != nil {
		t.Fatal(err)
	}
	return xmin
}

func TestUpsertCreatesWithLiteLLMDefaults(t *testing.T) {
	ctx := context.Background()
	db, raw := newDB(t)
	res, err := db.Upsert(ctx, "alice@example.com", "alice@example.com", "internal_user")
	if err != nil || res != Created {
		t.Fatalf("upsert: %v %v", res, err)
	}
	var (
		email, role             string
		teams, models, policies []string
		metadata, modelSpend    string
		spend                   float64
		createdAt, updatedAt    time.Time
	)
	err = raw.QueryRow(ctx, `SELECT user_email, user_role, teams, models, policies, metadata::text, model_spend::text, spend, created_at, updated_at
		FROM "LiteLLM_UserTable" WHERE user_id = 'alice@example.com'`).Scan(&email, &role, &teams, &models, &policies, &metadata, &modelSpend, &spend, &createdAt, &updatedAt)
	if err != nil {
		t.Fatal(err)
	}
	if email != "alice@example.com" || role != "internal_user" || len(teams) != 0 || len(models) != 0 || len(policies) != 0 ||
		metadata != "{}" || modelSpend != "{}" || spend != 0 || createdAt.IsZero() || !createdAt.Equal(updatedAt) {
		t.Fatalf("row: %q %q %v %v %v %s %s %v %v %v", email, role, teams, models, policies, metadata, modelSpend, spend, createdAt, updatedAt)
	}
}

func TestUpsertWritesNothingWhenUnchanged(t *testing.T) {
	ctx := context.Background()
	db, raw := newDB(t)
	if _, err := db.Upsert(ctx, "bob", "bob@example.com", "internal_user"); err != nil {
		t.Fatal(err)
	}
	before := rowVersion(t, raw, "bob")
	for range 3 {
		res, err := db.Upsert(ctx, "bob", "bob@example.com", "internal_user")
		if err != nil || res != Unchanged {
			t.Fatalf("upsert: %v %v", res, err)
		}
	}
	if after := rowVersion(t, raw, "bob"); after != before {
		t.Fatalf("row rewritten (xmin %s -> %s) although nothing changed", before, after)
	}
	if err := db.SetRole(ctx, "bob", "internal_user"); err != nil {
		t.Fatal(err)
	}
	if after := rowVersion(t, raw, "bob"); after != before {
		t.Fatal("SetRole rewrote an unchanged row")
	}
}

func TestUpsertUpdatesRoleAndKeepsLiteLLMsColumns(t *testing.T) {
	ctx := context.Background()
	db, raw := newDB(t)
	// A row LiteLLM created itself, with spend, teams and an email.
	if _, err := raw.Exec(ctx, `INSERT INTO "LiteLLM_UserTable" (user_id, user_email, user_role, teams, spend, updated_at)
		VALUES ('carol', 'carol@old.example', 'internal_user_viewer', '{team-a}', 12.5, '2020-01-01')`); err != nil {
		t.Fatal(err)
	}
	res, err := db.Upsert(ctx, "carol", "carol@new.example", "proxy_admin")
	if err != nil || res != Updated {
		t.Fatalf("upsert: %v %v", res, err)
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
	got, found, err := db.Role(ctx, "carol")
	if err != nil || !found || got != "proxy_admin" {
		t.Fatalf("Role: %q %v %v", got, found, err)
	}
}

func TestUpsertFillsMissingEmailOnly(t *testing.T) {
	ctx := context.Background()
	db, raw := newDB(t)
	if _, err := raw.Exec(ctx, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role) VALUES ('dan', 'internal_user')`); err != nil {
		t.Fatal(err)
	}
	if res, err := db.Upsert(ctx, "dan", "dan@example.com", "internal_user"); err != nil || res != Updated {
		t.Fatalf("upsert: %v %v", res, err)
	}
	if res, err := db.Upsert(ctx, "dan", "other@example.com", "internal_user"); err != nil || res != Unchanged {
		t.Fatalf("second upsert: %v %v", res, err)
	}
	var email string
	_ = raw.QueryRow(ctx, `SELECT user_email FROM "LiteLLM_UserTable" WHERE user_id = 'dan'`).Scan(&email)
	if email != "dan@example.com" {
		t.Fatalf("email %q", email)
	}
}

func TestDeleteAndMissingRows(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	if _, found, err := db.Role(ctx, "nobody"); err != nil || found {
		t.Fatalf("Role of a missing row: %v %v", found, err)
	}
	if err := db.SetRole(ctx, "nobody", "internal_user_viewer"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := db.Role(ctx, "nobody"); found {
		t.Fatal("SetRole created a row")
	}
	if _, err := db.Upsert(ctx, "eve", "", "internal_user"); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(ctx, "eve"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := db.Role(ctx, "eve"); found {
		t.Fatal("row not deleted")
	}
}

func TestDatabaseDownIsAnErrorAndLosesNothing(t *testing.T) {
	if !server.Private() {
		t.Fatal("this fault test stops the database: unset TEST_DATABASE_URL so it gets a private server")
	}
	ctx := context.Background()
	db, _ := newDB(t)
	if _, err := db.Upsert(ctx, "frank", "", "internal_user"); err != nil {
		t.Fatal(err)
	}
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
	_, err := db.Upsert(cctx, "frank", "", "proxy_admin")
	cancel()
	if err == nil || !strings.Contains(err.Error(), "upsert user frank") {
		t.Fatalf("upsert against a stopped database: %v", err)
	}
	if err := server.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	if role, _, err := db.Role(ctx, "frank"); err != nil || role != "internal_user" {
		t.Fatalf("after restart: %q %v (the failed write must not have landed)", role, err)
	}
	if res, err := db.Upsert(ctx, "frank", "", "proxy_admin"); err != nil || res != Updated {
		t.Fatalf("upsert after restart: %v %v", res, err)
	}
}

func TestOpenNeverLeaksThePassword(t *testing.T) {
	_, err := Open(context.Background(), "postgres://u:s3cr3t-pw@host:notaport/db", 1)
	if err == nil || strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Fatalf("Open error %v", err)
	}
}
