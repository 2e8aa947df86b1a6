package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestServerLifecycle(t *testing.T) {
	ctx := context.Background()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	dsn, err := s.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO "LiteLLM_UserTable" (user_id) VALUES ('alice')`); err != nil {
		t.Fatal(err)
	}
	var teams []string
	var spend float64
	if err := conn.QueryRow(ctx, `SELECT teams, spend FROM "LiteLLM_UserTable" WHERE user_id = 'alice'`).Scan(&teams, &spend); err != nil {
		t.Fatal(err)
	}
	if len(teams) != 0 || spend != 0 {
		t.Fatalf("defaults: teams=%v spend=%v", teams, spend)
	}
	_ = conn.Close(ctx)
	if !s.Private() {
		if os.Getenv(EnvDatabaseURL) == "" {
			t.Fatal("server is not private although TEST_DATABASE_URL is unset")
		}
		return
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if c, err := pgx.Connect(ctx, dsn); err == nil {
		_ = c.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM "LiteLLM_UserTable"`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after restart: n=%d err=%v", n, err)
	}
}
