package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxydb"
)

const teamsMapping = `metadata: {name: keycloak}
spec:
  claim: groups
  rules:
  - {glob: "/ai/*", role: internal_user}
  allowedTeams: ["ai-*"]
  teamSync: Exact
  teams:
  - {regex: "/ai/(.+)", team: "ai-$1"}
  - {equals: /ai/leads, team: ai-search, teamRole: admin}
`

// rosterOf returns team's members_with_roles as user_id -> role.
func rosterOf(t *testing.T, url, team string) map[string]string {
	t.Helper()
	out := map[string]string{}
	withConn(t, url, func(ctx context.Context, c *pgx.Conn) error {
		var raw []byte
		if err := c.QueryRow(ctx, `SELECT members_with_roles FROM "LiteLLM_TeamTable" WHERE team_id = $1`, team).Scan(&raw); err != nil {
			return err
		}
		var entries []struct {
			UserID string `json:"user_id"`
			Role   string `json:"role"`
		}
		_ = json.Unmarshal(raw, &entries)
		for _, e := range entries {
			out[e.UserID] = e.Role
		}
		return nil
	})
	return out
}

func teamsOf(pu *rolesyncv1.ProxyUser) string {
	var parts []string
	for _, m := range pu.Status.Teams {
		parts = append(parts, m.Team+"="+string(m.Role))
	}
	return strings.Join(parts, ",")
}

func teamsCondition(pu *rolesyncv1.ProxyUser) (string, string) {
	c := apimeta.FindStatusCondition(pu.Status.Conditions, rolesyncv1.ConditionTeamsSynced)
	if c == nil {
		return "", ""
	}
	return string(c.Status) + "/" + c.Reason, c.Message
}

// TestTeamsFromClaims runs the controller on LiteLLM's schema: templated and
// literal team rules add memberships as LiteLLM's member_add does, a missing
// team is reported and retried until it exists, an admin's membership in a
// team the mapping does not own is never touched, Exact removes a team the
// claims no longer grant (and handles its keys), drift in an owned team is
// put back, and Additive never removes.
func TestTeamsFromClaims(t *testing.T) {
	needSuite(t)
	ctx := context.Background()
	url, err := pgServer.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := &teamCheckCounter{DB: openDB(t, url)}
	ns := newNamespace(t)
	startOperator(t, ns, Options{Store: db, ResyncPeriod: 2 * time.Second, KeyRevocation: KeyRevocationBlock})
	rm := createMapping(t, ns, teamsMapping, true)
	pu := newUser(ns, "ana", map[string]any{"groups": []any{"/ai/search", "/ai/labs", "/ai/missing", "/ai/leads"}}, true)
	withConn(t, url, func(ctx context.Context, c *pgx.Conn) error {
		for _, stmt := range []string{
			`INSERT INTO "LiteLLM_UserTable" (user_id, sso_user_id, user_email, user_role, teams) VALUES ($1, $1, $2, 'internal_user', '{finance}')`,
			`INSERT INTO "LiteLLM_TeamTable" (team_id, members_with_roles, updated_at) VALUES
				('ai-search', '[]', now()), ('ai-labs', '[]', now()), ('finance', jsonb_build_array(jsonb_build_object('user_id', $1::text, 'role', 'user')), now())`,
			`INSERT INTO "LiteLLM_VerificationToken" (token, user_id, team_id) VALUES ('k-labs', $1, 'ai-labs')`,
		} {
			args := []any{pu.Spec.UserID}
			if strings.Contains(stmt, "$2") {
				args = append(args, pu.Spec.Email)
			}
			if _, err := c.Exec(ctx, stmt, args...); err != nil {
				return err
			}
		}
		return nil
	})
	createUser(t, pu)
	key := client.ObjectKeyFromObject(pu)

	// ai-missing does not exist: reported, never created; the others are in.
	got := waitUser(t, key, 30*time.Second, func(p *rolesyncv1.ProxyUser) error {
		if s, msg := teamsCondition(p); s != "False/TeamNotFound" || !strings.Contains(msg, "ai-missing") {
			return fmt.Errorf("TeamsSynced %s: %s", s, msg)
		}
		return nil
	})
	if teamsOf(got) != "ai-labs=user,ai-leads=user,ai-missing=user,ai-search=admin" {
		t.Fatalf("status.teams %s", teamsOf(got))
	}
	if r := rosterOf(t, url, "ai-search"); r[pu.Spec.UserID] != "admin" {
		t.Fatalf("ai-search roster %v (the higher of user and admin)", r)
	}
	if sqlCount(t, url, `SELECT count(*) FROM "LiteLLM_TeamTable" WHERE team_id IN ('ai-missing', 'ai-leads')`) != 0 {
		t.Fatal("rolesync created a team")
	}
	// The team appears: the retry adds the member.
	withConn(t, url, func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, `INSERT INTO "LiteLLM_TeamTable" (team_id, updated_at) VALUES ('ai-missing', now()), ('ai-leads', now())`)
		return err
	})
	waitUser(t, key, 30*time.Second, func(p *rolesyncv1.ProxyUser) error {
		if s, msg := teamsCondition(p); s != "True/TeamsSynced" {
			return fmt.Errorf("TeamsSynced %s: %s", s, msg)
		}
		return nil
	})
	if r := rosterOf(t, url, "ai-missing"); r[pu.Spec.UserID] != "user" {
		t.Fatalf("ai-missing roster %v", r)
	}

	// The user leaves /ai/labs: Exact removes ai-labs (key blocked), finance stays.
	patch := client.MergeFrom(got.DeepCopy())
	got.Spec.Claims = &apiextensionsv1.JSON{Raw: []byte(`{"groups": ["/ai/search", "/ai/missing", "/ai/leads"]}`)}
	if err := k8sClient.Patch(ctx, got, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if _, in := rosterOf(t, url, "ai-labs")[pu.Spec.UserID]; in {
			return fmt.Errorf("still in ai-labs")
		}
		return nil
	})
	if r := rosterOf(t, url, "finance"); r[pu.Spec.UserID] != "user" {
		t.Fatalf("the admin's membership in finance (not owned) was touched: %v", r)
	}
	if sqlCount(t, url, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE token = 'k-labs' AND blocked`) != 1 {
		t.Fatal("the removed team's key was not blocked (--key-revocation=Block)")
	}
	var teams []string
	withConn(t, url, func(ctx context.Context, c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT teams FROM "LiteLLM_UserTable" WHERE user_id = $1`, pu.Spec.UserID).Scan(&teams)
	})
	slices.Sort(teams)
	if strings.Join(teams, ",") != "ai-leads,ai-missing,ai-search,finance" {
		t.Fatalf("the user's teams array %v", teams)
	}

	// Drift: someone removes the user from ai-search; the resync puts it back.
	withConn(t, url, func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, `UPDATE "LiteLLM_TeamTable" SET members_with_roles = '[]' WHERE team_id = 'ai-search'`)
		return err
	})
	eventually(t, 30*time.Second, func() error {
		if rosterOf(t, url, "ai-search")[pu.Spec.UserID] != "admin" {
			return fmt.Errorf("ai-search not put back")
		}
		return nil
	})

	// Additive: leaving a group removes nothing.
	rmPatch := client.MergeFrom(rm.DeepCopy())
	rm.Spec.TeamSync = rolesyncv1.TeamSyncAdditive
	if err := k8sClient.Patch(ctx, rm, rmPatch); err != nil {
		t.Fatal(err)
	}
	cur := &rolesyncv1.ProxyUser{}
	if err := k8sClient.Get(ctx, key, cur); err != nil {
		t.Fatal(err)
	}
	patch = client.MergeFrom(cur.DeepCopy())
	cur.Spec.Claims = &apiextensionsv1.JSON{Raw: []byte(`{"groups": ["/ai/search"]}`)}
	if err := k8sClient.Patch(ctx, cur, patch); err != nil {
		t.Fatal(err)
	}
	waitUser(t, key, 30*time.Second, func(p *rolesyncv1.ProxyUser) error {
		if teamsOf(p) != "ai-search=user" || p.Status.ObservedGeneration != p.Generation {
			return fmt.Errorf("status.teams %s", teamsOf(p))
		}
		return nil
	})
	db.waitChecks(t, 2) // resyncs check the memberships again: Additive must still not remove
	if r := rosterOf(t, url, "ai-missing"); r[pu.Spec.UserID] != "user" {
		t.Fatalf("Additive removed ai-missing: %v", r)
	}
	// Additive does not lower the admin role ai-search holds either.
	if r := rosterOf(t, url, "ai-search"); r[pu.Spec.UserID] != "admin" {
		t.Fatalf("Additive lowered ai-search: %v", r)
	}
	if n := sqlCount(t, url, `SELECT count(*) FROM "LiteLLM_AuditLog" WHERE table_name = 'LiteLLM_TeamTable'`); n < 5 {
		t.Fatalf("%d team audit rows", n)
	}
}

// TestTeamDriftReported: under --drift-policy=Report a membership removed
// behind rolesync's back in an owned team is reported, not put back.
func TestTeamDriftReported(t *testing.T) {
	needSuite(t)
	ctx := context.Background()
	url, err := pgServer.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t)
	db := &teamCheckCounter{DB: openDB(t, url)}
	startOperator(t, ns, Options{Store: db, ResyncPeriod: 2 * time.Second, DriftPolicy: DriftReport})
	createMapping(t, ns, teamsMapping, true)
	pu := newUser(ns, "bo", map[string]any{"groups": []any{"/ai/search"}}, true)
	withConn(t, url, func(ctx context.Context, c *pgx.Conn) error {
		if _, err := c.Exec(ctx, `INSERT INTO "LiteLLM_UserTable" (user_id, sso_user_id, user_role, teams) VALUES ($1, $1, 'internal_user', '{}')`, pu.Spec.UserID); err != nil {
			return err
		}
		_, err := c.Exec(ctx, `INSERT INTO "LiteLLM_TeamTable" (team_id, updated_at) VALUES ('ai-search', now())`)
		return err
	})
	createUser(t, pu)
	key := client.ObjectKeyFromObject(pu)
	waitUser(t, key, 30*time.Second, func(p *rolesyncv1.ProxyUser) error {
		if s, msg := teamsCondition(p); s != "True/TeamsSynced" {
			return fmt.Errorf("TeamsSynced %s: %s", s, msg)
		}
		return nil
	})
	withConn(t, url, func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, `UPDATE "LiteLLM_TeamTable" SET members_with_roles = '[]' WHERE team_id = 'ai-search'`)
		return err
	})
	waitUser(t, key, 30*time.Second, func(p *rolesyncv1.ProxyUser) error {
		if s, msg := teamsCondition(p); s != "False/DriftDetected" || !strings.Contains(msg, "ai-search (removed)") {
			return fmt.Errorf("TeamsSynced %s: %s", s, msg)
		}
		return nil
	})
	db.waitChecks(t, 2) // resyncs check the memberships again: still reported, still not put back
	got := &rolesyncv1.ProxyUser{}
	if err := k8sClient.Get(ctx, key, got); err != nil {
		t.Fatal(err)
	}
	if s, msg := teamsCondition(got); s != "False/DriftDetected" {
		t.Fatalf("after a resync: TeamsSynced %s: %s", s, msg)
	}
	if _, in := rosterOf(t, url, "ai-search")[pu.Spec.UserID]; in {
		t.Fatal("Report put the membership back")
	}
}

// teamCheckCounter counts the controller's team checks (each reads the
// user's teams array once), so a test can wait for checks to happen
// instead of sleeping through a resync.
type teamCheckCounter struct {
	*proxydb.DB
	checks atomic.Int64
}

func (c *teamCheckCounter) UserTeams(ctx context.Context, rowUserID string) ([]string, error) {
	c.checks.Add(1)
	return c.DB.UserTeams(ctx, rowUserID)
}

// FindMany is the drift sweep's read: the teams of every user read come
// with it, and each user's reconcile then checks them.
func (c *teamCheckCounter) FindMany(ctx context.Context, lookups []proxydb.Lookup) ([]proxydb.Found, error) {
	c.checks.Add(int64(len(lookups)))
	return c.DB.FindMany(ctx, lookups)
}

// waitChecks waits until n more team checks have run.
func (c *teamCheckCounter) waitChecks(t *testing.T, n int64) {
	t.Helper()
	from := c.checks.Load()
	eventually(t, 30*time.Second, func() error {
		if done := c.checks.Load() - from; done < n {
			return fmt.Errorf("%d of %d team checks so far", done, n)
		}
		return nil
	})
}
