package proxydb

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestFindManyAnswersAsFind reads many users in one statement and checks
// each answer against Find's for the same user: LiteLLM's lookup order
// (user_id, then sso_user_id, then ASCII-equal email), ambiguity, the
// look-alike email that must bind nothing, users without a row; and the
// teams array of the row found.
func TestFindManyAnswersAsFind(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, sso_user_id, user_email, user_role, teams) VALUES
		('6f1c0a52-0000-4000-8000-000000000001', 'alice', 'Alice@Example.com', 'internal_user', '{team-a}'),
		('alice-by-email', NULL, 'alice@example.com', 'internal_user_viewer', '{}'),
		('bob', NULL, 'bob@example.com', 'internal_user', '{team-b,team-c}'),
		('3a1e0000-0000-4000-8000-000000000002', NULL, 'Carol@Example.com', NULL, NULL),
		('dup-1', NULL, 'dup@example.com', NULL, NULL),
		('dup-2', NULL, 'DUP@example.com', NULL, NULL),
		('kim-row', NULL, 'kim@example.com', 'proxy_admin', NULL),
		('erin', 'erin', 'erin@example.com', 'org_admin', NULL)`)
	exec(t, raw, `UPDATE "LiteLLM_UserTable" SET metadata = '{"scim_active": false}' WHERE user_id = 'bob'`)
	lookups := []Lookup{
		{UserID: "bob", Email: "other@example.com"},
		{UserID: "alice", Email: "alice@example.com"},
		{UserID: "carol-sso", Email: "carol@EXAMPLE.com"},
		{UserID: "nobody", Email: "nobody@example.com"},
		{UserID: "nobody-2"},
		{UserID: "dup", Email: "dup@example.com"},
		{UserID: "attacker", Email: "\u212aim@example.com"},
		{UserID: "kim-sso", Email: "KIM@Example.com"},
		{UserID: "erin", Email: "erin@example.com"},
		{UserID: "bob", Email: "bob@example.com"}, // the same user twice
	}
	got, err := db.FindMany(ctx, lookups)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(lookups) {
		t.Fatalf("%d answers for %d lookups", len(got), len(lookups))
	}
	for i, l := range lookups {
		row, found, ferr := db.Find(ctx, l.UserID, l.Email)
		if got[i].Row != row || got[i].Found != found || fmt.Sprint(got[i].Err) != fmt.Sprint(ferr) {
			t.Errorf("%s/%s: FindMany %+v %v %v, Find %+v %v %v", l.UserID, l.Email, got[i].Row, got[i].Found, got[i].Err, row, found, ferr)
		}
		if found {
			teams, err := db.UserTeams(ctx, row.UserID)
			if err != nil {
				t.Fatal(err)
			}
			if len(teams) != len(got[i].Teams) || (len(teams) > 0 && !reflect.DeepEqual(teams, got[i].Teams)) {
				t.Errorf("%s: teams %v, UserTeams %v", l.UserID, got[i].Teams, teams)
			}
		}
	}
	var amb *AmbiguousError
	if !errors.As(got[5].Err, &amb) || strings.Join(amb.Rows, ",") != "dup-1,dup-2" {
		t.Errorf("dup: %v", got[5].Err)
	}
	if got[6].Found {
		t.Errorf("the look-alike email bound %s", got[6].Row.UserID)
	}
	if !got[0].Row.Inactive || got[0].Row.UserID != "bob" || !reflect.DeepEqual(got[0].Teams, []string{"team-b", "team-c"}) {
		t.Errorf("bob: %+v", got[0])
	}
}

// TestFindManyIsOneStatementAndBounded: a batch is one statement, however
// many users; more than MaxLookups is refused; a batch whose candidate rows
// reach the bound (a flood of rows sharing users' addresses) is answered
// user by user, still exactly.
func TestFindManyIsOneStatementAndBounded(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_email, user_role)
		SELECT 'u' || g, 'u' || g || '@example.com', 'internal_user' FROM generate_series(1, 1000) g`)
	lookups := make([]Lookup, 1000)
	for i := range lookups {
		lookups[i] = Lookup{UserID: fmt.Sprintf("u%d", i+1), Email: fmt.Sprintf("u%d@example.com", i+1)}
	}
	batches, finds := statementsOf(t, "find_many"), statementsOf(t, "find")
	got, err := db.FindMany(ctx, lookups)
	if err != nil {
		t.Fatal(err)
	}
	if b, f := statementsOf(t, "find_many")-batches, statementsOf(t, "find")-finds; b != 1 || f != 0 {
		t.Fatalf("1,000 users read with %d batch statements and %d single finds, want 1 and 0", b, f)
	}
	for i, f := range got {
		if !f.Found || f.Row.UserID != lookups[i].UserID {
			t.Fatalf("lookup %d: %+v", i, f)
		}
	}
	if _, err := db.FindMany(ctx, make([]Lookup, MaxLookups+1)); err == nil || !strings.Contains(err.Error(), "at most 1000") {
		t.Fatalf("an oversized batch: %v", err)
	}

	// 40 rows per address for two users (LIMIT 16 per lookup is 32): the
	// batch falls back to Find, which reports each as ambiguous.
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_email) SELECT 'flood-a-' || g, 'a@flood.example' FROM generate_series(1, 40) g`)
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_email) SELECT 'flood-b-' || g, 'b@flood.example' FROM generate_series(1, 40) g`)
	flood := []Lookup{{UserID: "x", Email: "a@flood.example"}, {UserID: "y", Email: "b@flood.example"}}
	got, err = db.FindMany(ctx, flood)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range got {
		var amb *AmbiguousError
		_, _, ferr := db.Find(ctx, flood[i].UserID, flood[i].Email)
		if !errors.As(f.Err, &amb) || fmt.Sprint(f.Err) != fmt.Sprint(ferr) {
			t.Fatalf("flood %d: %v (Find: %v)", i, f.Err, ferr)
		}
	}
}

// statementsOf is how many statements of operation ran (the
// rolesync_database_query_duration_seconds histogram's count).
func statementsOf(t *testing.T, operation string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := queryDuration.WithLabelValues(operation).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// TestFindManyReadsThroughIndexesUnderAGenericPlan: pgx prepares the batch
// read, and PostgreSQL may plan a prepared statement once for any
// parameters (a generic plan, after five runs or under plan_cache_mode
// force_generic_plan). That plan must still read through LiteLLM's
// indexes: a sequential scan reads every user's row for every batch of
// the drift sweep (100 ms per batch at 10,000 users, measured).
func TestFindManyReadsThroughIndexesUnderAGenericPlan(t *testing.T) {
	_, raw := newDB(t)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_email, user_role)
		SELECT 'u' || g, 'u' || g || '@example.com', 'internal_user' FROM generate_series(1, 10000) g`)
	exec(t, raw, `ANALYZE "LiteLLM_UserTable"`)
	exec(t, raw, `SET plan_cache_mode = force_generic_plan`)
	exec(t, raw, `PREPARE find_many(text[], text[], text[], bigint) AS `+findManySQL)
	rows, err := raw.Query(ctx, `EXPLAIN EXECUTE find_many('{u1,u2}', '{u1@example.com,u2@example.com}', '{u1@example.com,u2@example.com}', 32)`)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	if strings.Contains(text, "Seq Scan") || !strings.Contains(text, "LiteLLM_UserTable_user_email_lower_idx") {
		t.Fatalf("the generic plan of the batch read does not go through the indexes:\n%s", text)
	}
}
